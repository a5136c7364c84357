"""Class lists and the mapping between archives' diagnoses and each label space.

Class lists are fixed here, never taken from the order in which labels appear in data, and each
dataset and bundle saves the list it was made with.

Mapping (diagnosis as the archive writes it, lowercased -> class):
- HAM10000 into ISIC 2019: bcc, bkl, df, mel, nv, vasc map to themselves; HAM's akiec covers
  ISIC 2019's AK *and* SCC, so an akiec image cannot be placed and is rejected (unknown_label).
- ISIC 2019 into HAM10000: ak and scc both become akiec; the other six keep their names.
- Either into melanoma: mel is melanoma, every other known diagnosis is non_melanoma.
- ISIC 2019's UNK (unknown) maps to nothing in any space and is rejected (unknown_label).
"""

from dermspark import DermsparkError

HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
ISIC2019_CLASSES = ("ak", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc")
# The Hitta thesis' names, in the alphabetical order Keras gives class folders.
MELANOMA_CLASSES = ("melanoma", "non_melanoma")
# ISIC 2019's one-hot ground-truth columns, in the file's order.
ISIC2019_DIAGNOSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")

# What a person reads: HAM10000's and ISIC 2019's own names for their diagnoses.
DISPLAY_NAMES = {
    "akiec": "Actinic keratosis / intraepithelial carcinoma",
    "ak": "Actinic keratosis",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesion",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevus",
    "scc": "Squamous cell carcinoma",
    "vasc": "Vascular lesion",
    "melanoma": "Melanoma",
    "non_melanoma": "Not melanoma",
}

LABEL_SPACES = {
    "ham10000": HAM10000_CLASSES,
    "isic2019": ISIC2019_CLASSES,
    "melanoma": MELANOMA_CLASSES,
}

_SHARED = ("bcc", "bkl", "df", "mel", "nv", "vasc")
_ISIC_TO_HAM = {**{name: name for name in _SHARED}, "ak": "akiec", "scc": "akiec"}
_HAM_TO_ISIC = {name: name for name in _SHARED}


def _to_melanoma(names) -> dict[str, str]:
    return {name: "melanoma" if name == "mel" else "non_melanoma" for name in names}


_MAPPINGS = {
    ("ham10000", "ham10000"): {name: name for name in HAM10000_CLASSES},
    ("ham10000", "isic2019"): _HAM_TO_ISIC,
    ("ham10000", "melanoma"): _to_melanoma(HAM10000_CLASSES),
    ("isic2019", "isic2019"): {name: name for name in ISIC2019_CLASSES},
    ("isic2019", "ham10000"): _ISIC_TO_HAM,
    ("isic2019", "melanoma"): _to_melanoma(ISIC2019_CLASSES),
}


def class_list(label_space: str) -> tuple[str, ...]:
    try:
        return LABEL_SPACES[label_space]
    except KeyError:
        raise DermsparkError(f"unknown label space {label_space!r}; known: {', '.join(sorted(LABEL_SPACES))}") from None


def space_of(classes) -> str:
    """The label space a bundle's class list belongs to."""
    for name, known in LABEL_SPACES.items():
        if tuple(classes) == known:
            return name
    raise DermsparkError(f"classes {list(classes)} are not one of the label spaces {', '.join(LABEL_SPACES)}")


def label_mapping(source_space: str, label_space: str) -> dict[str, str]:
    """Diagnosis in the source's vocabulary -> class name in label_space. Class folders name
    their classes directly, so for them every space also accepts its own class names and the
    names of the other vocabularies that map into it."""
    classes = class_list(label_space)
    if source_space == "any":
        mapping = {name: name for name in classes}
        for (source, target), known in _MAPPINGS.items():
            if target == label_space and source != target:
                mapping = {**known, **mapping}
        return mapping
    try:
        return dict(_MAPPINGS[(source_space, label_space)])
    except KeyError:
        raise DermsparkError(f"no mapping from {source_space!r} diagnoses to {label_space!r}") from None


def display_name(label: str) -> str:
    """A class's readable name; a class dermspark does not know (a folders archive) keeps its own."""
    return DISPLAY_NAMES.get(label, label)


# A diagnosis written out in words (a DICOM header's, the ISIC archive's): the code it names.
# ISIC 2019's BKL gathers seborrheic keratosis, solar lentigo and lichen planus-like keratosis.
_WORDS = {
    **{DISPLAY_NAMES[code].lower(): code for code in (*HAM10000_CLASSES, *ISIC2019_CLASSES)},
    "nevus": "nv",
    "melanocytic nevi": "nv",
    "seborrheic keratosis": "bkl",
    "solar lentigo": "bkl",
    "lentigo nos": "bkl",
    "lichenoid keratosis": "bkl",
    "lichen planus-like keratosis": "bkl",
    "benign keratosis": "bkl",
    "vascular lesions": "vasc",
    "actinic keratoses": "ak",
    "melanoma": "mel",
    "non_melanoma": "non_melanoma",
}
UNRECOGNISED = "(not a diagnosis dermspark knows)"


def diagnosis_code(text: str | None) -> str | None:
    """A diagnosis as words or a code -> the code `label_mapping` takes; UNRECOGNISED for any
    other text (never the text itself: it may be free text a person typed); None when empty."""
    if text is None or not str(text).strip():
        return None
    words = " ".join(str(text).strip().lower().split())
    known = {*HAM10000_CLASSES, *ISIC2019_CLASSES}
    return words if words in known else _WORDS.get(words, UNRECOGNISED)


# The class whose probability the melanoma flag reads, in any label space.
MELANOMA_NAMES = ("mel", "melanoma")


def melanoma_index(classes) -> int | None:
    """Where the melanoma probability is, for the flag; None for a model without that class."""
    for index, name in enumerate(classes):
        if name.lower() in MELANOMA_NAMES:
            return index
    return None
