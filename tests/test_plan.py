"""The training plan: stages, sampling rates and class weights, worked out by hand."""

import pytest
from dermspark import DermsparkError
from dermspark.models import get_recipe
from dermspark.settings.train import TrainSettings
from dermspark.settings_core import resolve
from dermspark.train.plan import (
    cache_training,
    class_weights,
    make_plan,
    parse_imbalance,
    sampling_rates,
)

CLASSES = ["a", "b", "c"]
PER_SPLIT = {"train": {"a": 900, "b": 300, "c": 60}, "validation": {"a": 100, "b": 30}}


def plan(model="benbrahim_cnn", num_proc=2, **settings):
    # Through resolve, as the job's flags and YAML go, so the settings' own checks apply.
    return make_plan(
        get_recipe(model),
        resolve(TrainSettings, None, {"model": model, "dataset": "d", "output": "o", **settings}),
        CLASSES,
        PER_SPLIT,
        num_proc,
    )


def test_no_imbalance_handling_reads_each_image_once_per_epoch():
    result = plan()
    assert result.sampling_rates == [1.0, 1.0, 1.0]
    assert result.class_weights is None
    # 1,260 training images in batches of 32 on 2 processes: ceil(1260 / 64) steps.
    assert result.steps_per_epoch == 20
    assert result.validation_steps == 5  # ceil(130 / 32)


def test_cap_thins_large_classes_only():
    rates = sampling_rates([900, 300, 60], {"oversample": False, "cap_per_class": 450})
    assert rates == pytest.approx([0.5, 1.0, 1.0])


def test_oversampling_draws_every_class_up_to_the_largest():
    rates = sampling_rates([900, 300, 60, 0], {"oversample": True, "cap_per_class": 0})
    assert rates == pytest.approx([1.0, 3.0, 15.0, 0.0])


def test_class_weights_balance_what_an_epoch_draws():
    # 1,200 drawn over 3 classes: 400 each would be balanced, so a: 400/900, b: 400/240 ...
    assert class_weights([900, 240, 60]) == pytest.approx({0: 400 / 900, 1: 400 / 240, 2: 400 / 60})
    assert class_weights([10, 0])[1] == 1.0  # absent class: unused, neutral


def test_benedetti_recipe_caps_at_450_with_class_weights_and_two_stages():
    result = plan("inception_resnet_v2_benedetti", weights="none")
    assert result.imbalance == {"class_weights": True, "cap_per_class": 450, "oversample": False}
    assert result.sampling_rates == pytest.approx([0.5, 1.0, 1.0])
    # Capped counts 450, 300, 60: weights 270 / count.
    assert result.class_weights == pytest.approx({0: 270 / 450, 1: 270 / 300, 2: 270 / 60})
    first, second = result.stages
    assert (first.optimizer, first.learning_rate, first.momentum) == ("sgd_nesterov", 6e-4, 0.9)
    assert (first.epochs, first.early_stopping_patience, second.epochs) == (100, 15, 20)
    assert result.batch_size == 10


def test_hitta_second_stage_unfreezes_and_overrides_reach_each_stage():
    first, second = plan("inception_resnet_v2_hitta", epochs=2, fine_tune_epochs=1).stages
    assert (first.epochs, first.decay_steps, first.decay_rate) == (2, 100_000, 0.96)
    assert (second.epochs, second.learning_rate, second.unfreeze_last) == (1, 1e-4, 30)
    assert len(plan("inception_resnet_v2_hitta", fine_tune_epochs=0).stages) == 1


def test_imbalance_flag_replaces_the_recipe():
    recipe = get_recipe("inception_resnet_v2_benedetti")
    assert parse_imbalance("none", recipe, 0) == {"class_weights": False, "cap_per_class": 0, "oversample": False}
    assert parse_imbalance("oversample", recipe, 0)["oversample"] is True
    assert parse_imbalance("cap", get_recipe("benbrahim_cnn"), 100)["cap_per_class"] == 100
    with pytest.raises(DermsparkError, match="unknown --imbalance smote"):
        parse_imbalance("smote", recipe, 0)


def test_a_shard_is_cached_only_when_its_largest_rank_fits_the_budget():
    # 75x100x3 bytes = 22,500 an image: 46 MiB hold 2,143 of them.
    assert cache_training([2000, 2100], (75, 100), cache_mb=46)
    assert not cache_training([2000, 2200], (75, 100), cache_mb=46)
    assert not cache_training([10], (75, 100), cache_mb=0)
    with pytest.raises(DermsparkError, match="--cache-mb must be 0"):
        cache_training([10], (75, 100), cache_mb=-1)


def test_monitor_overrides_the_recipe_for_every_stage():
    benedetti = "inception_resnet_v2_benedetti"
    assert [stage.monitor for stage in plan(benedetti, weights="none").stages] == ["val_loss"] * 2
    chosen = plan(benedetti, weights="none", monitor="val_balanced_accuracy").stages
    assert [stage.monitor for stage in chosen] == ["val_balanced_accuracy"] * 2
    with pytest.raises(DermsparkError, match="'monitor' must be one of val_loss, val_balanced_accuracy, got 'val_auc'"):
        plan(monitor="val_auc")


def test_stage_end_overrides_the_recipe_for_every_stage():
    assert [stage.restore_best for stage in plan().stages] == [False]
    assert [stage.restore_best for stage in plan(stage_end="best").stages] == [True]
    benedetti = "inception_resnet_v2_benedetti"
    assert [stage.restore_best for stage in plan(benedetti).stages] == [True, True]
    assert [stage.restore_best for stage in plan(benedetti, stage_end="last").stages] == [False, False]
    with pytest.raises(DermsparkError, match="'stage_end' must be one of best, last, got 'first'"):
        plan(stage_end="first")


def test_lr_schedule_replaces_the_recipes_decay_in_every_stage():
    assert [stage.cosine for stage in plan().stages] == [False]
    assert [stage.cosine for stage in plan(lr_schedule="cosine").stages] == [True]
    hitta = "inception_resnet_v2_hitta"
    assert plan(hitta).stages[0].decay_steps == 100_000
    first, second = plan(hitta, lr_schedule="cosine").stages
    assert (first.cosine, first.decay_steps, second.cosine) == (True, 0, True)
    constant = plan(hitta, lr_schedule="constant").stages[0]
    assert (constant.cosine, constant.decay_steps) == (False, 0)
    with pytest.raises(DermsparkError, match="'lr_schedule' must be one of constant, cosine, got 'step'"):
        plan(lr_schedule="step")


def test_ema_reaches_every_stage_and_must_be_a_momentum():
    assert [stage.ema for stage in plan().stages] == [0.0]
    benedetti = "inception_resnet_v2_benedetti"
    assert [stage.ema for stage in plan(benedetti, ema=0.99).stages] == [0.99, 0.99]
    with pytest.raises(DermsparkError, match="--ema must be below 1, got 1"):
        plan(ema=1.0)
