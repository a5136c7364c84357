import pytest
from dermspark import DermsparkError
from dermspark.labels import class_list, label_mapping


def test_class_lists_are_fixed():
    assert class_list("ham10000") == ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    assert len(class_list("isic2019")) == 8
    assert class_list("melanoma") == ("melanoma", "non_melanoma")


def test_isic_ak_and_scc_both_become_ham_akiec():
    mapping = label_mapping("isic2019", "ham10000")
    assert mapping["ak"] == mapping["scc"] == "akiec"
    assert "unk" not in mapping


def test_ham_akiec_cannot_be_split_into_isic_classes():
    assert "akiec" not in label_mapping("ham10000", "isic2019")


def test_melanoma_vs_rest():
    mapping = label_mapping("ham10000", "melanoma")
    assert mapping["mel"] == "melanoma"
    assert {mapping[name] for name in ("nv", "bcc", "akiec")} == {"non_melanoma"}


@pytest.mark.parametrize("source", ["ham10000", "isic2019", "any"])
@pytest.mark.parametrize("space", ["ham10000", "isic2019", "melanoma"])
def test_every_mapping_exists_and_lands_in_its_space(source, space):
    # Every archive vocabulary maps into every label space; a raise here is a failure.
    mapping = label_mapping(source, space)
    assert mapping
    assert set(mapping.values()) <= set(class_list(space))
    # Every class of the space is reachable from the source, except ISIC's ak and scc from
    # HAM10000's akiec, which covers both.
    missing = set(class_list(space)) - set(mapping.values())
    assert missing == ({"ak", "scc"} if (source, space) == ("ham10000", "isic2019") else set())


def test_unknown_space_names_the_known_ones():
    with pytest.raises(DermsparkError, match="ham10000"):
        class_list("imagenet")
