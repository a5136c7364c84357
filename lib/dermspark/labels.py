"""Class lists. Fixed here, never taken from the order in which labels appear in data."""

# HAM10000's seven diagnoses, in the alphabetical order of the official `dx` codes.
HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

HAM10000_NAMES = {
    "akiec": "actinic keratoses and intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesions",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevi",
    "vasc": "vascular lesions",
}

LABEL_SPACES = {"ham10000": HAM10000_CLASSES}


def class_list(label_space: str) -> tuple[str, ...]:
    try:
        return LABEL_SPACES[label_space]
    except KeyError:
        raise ValueError(
            f"unknown label space {label_space!r}; known: {', '.join(sorted(LABEL_SPACES))}"
        ) from None
