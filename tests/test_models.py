import pytest
from dermspark.models import create_model, get_recipe, list_models

# Benbrahim et al. (2020), Table 6.1: (layer, output shape, parameters). The table's first row
# repeats the input shape; with valid 3x3 convolutions the real output is 73x98.
TABLE_6_1 = [
    ("conv2d_1", (73, 98, 64), 1792),
    ("max_pooling2d_1", (36, 49, 64), 0),
    ("conv2d_2", (34, 47, 64), 36928),
    ("max_pooling2d_2", (17, 23, 64), 0),
    ("conv2d_3", (15, 21, 128), 73856),
    ("max_pooling2d_3", (7, 10, 128), 0),
    ("conv2d_4", (5, 8, 128), 147584),
    ("max_pooling2d_4", (2, 4, 128), 0),
    ("flatten", (1024,), 0),
    ("dropout", (1024,), 0),
    ("dense_1", (512,), 524800),
    ("dense_2", (7,), 3591),
]


def test_benbrahim_cnn_matches_table_6_1():
    model = create_model("benbrahim_cnn")
    assert model.input_shape == (None, 75, 100, 3)
    for name, shape, parameters in TABLE_6_1:
        layer = model.get_layer(name)
        assert layer.output_shape[1:] == shape, name
        assert layer.count_params() == parameters, name
    assert model.count_params() == sum(p for _, _, p in TABLE_6_1) == 788_551


def test_recipe_carries_the_paper_values():
    recipe = get_recipe("benbrahim_cnn")
    assert recipe.input_size == (75, 100)
    assert recipe.epochs == 25
    assert recipe.split == "80/10/10"


def test_overrides_reach_the_builder():
    model = create_model("benbrahim_cnn", num_classes=2)
    assert model.output_shape == (None, 2)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match="benbrahim_cnn"):
        create_model("resnet_from_nowhere")
    assert "benbrahim_cnn" in list_models()
