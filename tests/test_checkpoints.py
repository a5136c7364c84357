"""Early stopping and best-epoch bookkeeping, and the checkpoint store round trip."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from dermspark.train.checkpoints import CheckpointStore
from dermspark.train.state import TrainingState
from dermspark.train.worker_config import StagePlan


def tiny_model():
    inputs = tf.keras.Input(shape=(3,))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(2)(inputs))


def test_early_stopping_waits_patience_epochs_after_the_best():
    state = TrainingState()
    stage = StagePlan(epochs=10, early_stopping_patience=2, restore_best=True)
    outcomes = [
        state.end_epoch(epoch, {"loss": loss, "val_loss": loss}, stage)
        for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.85])
    ]
    # Best at epoch 2, then 2 epochs worse: stop after the 4th.
    assert [outcome.stop for outcome in outcomes] == [False, False, False, True]
    assert [outcome.improved for outcome in outcomes] == [True, True, False, False]
    assert state.best == "best-stage0-epoch2" and state.best_value == 0.8 and state.last == "stage0-epoch4"
    assert state.stopped_early == [{"stage": 0, "epoch": 4}]
    assert state.history["val_loss"] == [1.0, 0.8, 0.9, 0.85]
    assert state.stage_done(stage)
    assert not TrainingState(epoch=4, best_value=0.8, wait=2).stage_done(
        dataclasses.replace(stage, early_stopping_patience=0)
    )
    # What each epoch made stale: the previous last epoch, and a best that was beaten.
    assert [outcome.stale for outcome in outcomes] == [
        [],
        ["stage0-epoch1", "best-stage0-epoch1"],
        ["stage0-epoch2"],
        ["stage0-epoch3"],
    ]


def test_a_stage_that_runs_its_epochs_out_did_not_stop_early():
    state = TrainingState()
    stage = StagePlan(epochs=3, early_stopping_patience=2, restore_best=False)
    outcomes = [state.end_epoch(epoch, {"val_loss": loss}, stage) for epoch, loss in enumerate([1.0, 1.1, 1.2])]
    assert not any(outcome.stop for outcome in outcomes) and state.stopped_early == []
    assert state.stage_done(stage) and state.best is None and state.chosen(stage) == "stage0-epoch3"


def test_balanced_accuracy_is_monitored_upwards():
    state = TrainingState()
    stage = StagePlan(epochs=10, early_stopping_patience=2, restore_best=True, monitor="val_balanced_accuracy")
    # The loss falls throughout; balanced accuracy peaks at epoch 2, which is what counts here.
    for epoch, (loss, balanced) in enumerate([(1.0, 0.5), (0.9, 0.7), (0.8, 0.6), (0.7, 0.7)]):
        outcome = state.end_epoch(epoch, {"val_loss": loss, "val_balanced_accuracy": balanced}, stage)
    assert state.best == "best-stage0-epoch2" and state.best_value == 0.7
    assert outcome.stop and state.stopped_early == [{"stage": 0, "epoch": 4}]


def test_a_stage_ends_on_its_chosen_epoch_and_the_next_starts_from_it():
    state = TrainingState(start_from=None)
    stage = StagePlan(epochs=3, early_stopping_patience=0, restore_best=True, monitor="val_loss")
    for epoch, loss in enumerate([1.0, 0.7, 0.9]):
        state.end_epoch(epoch, {"loss": loss, "val_loss": loss}, stage)
    stale = state.end_stage(stage, stages=2)
    assert stale == ["stage0-epoch3"]
    assert state.ended_on == [{"stage": 0, "epoch": 2, "by": "best val_loss"}]
    assert (state.stage, state.epoch, state.start_from, state.finished) == (1, 0, "best-stage0-epoch2", False)
    assert state.stage_ends == [3]
    # What a resume reads back is the same state.
    assert TrainingState.from_dict(state.to_dict()) == state


def test_balanced_accuracy_metric_equals_scikit_learns():
    from dermspark.train.keras_metrics import BalancedAccuracy
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1, 2, 4], size=300, p=[0.7, 0.2, 0.05, 0.05])  # class 3 never appears
    probabilities = rng.dirichlet(np.ones(5), size=300)
    probabilities[np.arange(300), labels] += rng.random(300) * 0.6  # better than chance
    metric = BalancedAccuracy(5)
    for start in range(0, 300, 64):  # batch by batch, as an epoch feeds it
        metric.update_state(labels[start : start + 64, None], probabilities[start : start + 64])
    expected = balanced_accuracy_score(labels, probabilities.argmax(axis=1))
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)
    assert 0.4 < expected < 0.95  # neither chance nor perfect: the test can tell them apart
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_a_weight_average_is_validated_and_saved_while_training_goes_on_from_its_own_weights(tmp_path):
    from dermspark.train.averaging import WeightAverage

    rng = np.random.default_rng(1)
    features, targets = rng.random((32, 3)).astype("float32"), rng.random((32, 2)).astype("float32")
    plain, averaged = tiny_model(), tiny_model()
    averaged.set_weights(plain.get_weights())
    for model in (plain, averaged):
        model.compile(optimizer=tf.keras.optimizers.Adam(0.05), loss="mse")
    average = WeightAverage(averaged, momentum=0.5)
    steps, seen = [], {}  # the plain run's weights after each step; what the averaged run validated and saved
    record = tf.keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: steps.append(plain.get_weights()))
    saved = tf.keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.update({epoch: averaged.get_weights()}, val_loss=logs["val_loss"])
    )
    plain.fit(features, targets, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[record])
    before, after = average.callbacks()
    averaged.fit(
        features,
        targets,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        validation_data=(features, targets),
        callbacks=[*before, saved, *after],
    )
    # Training itself is untouched: the same 8 steps to the same weights.
    for mine, theirs in zip(averaged.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    # The average worked out by hand: the first step's weights, then momentum min(0.5, (1+t)/(10+t)).
    expected = [weights.copy() for weights in steps[0]]
    for t, weights in enumerate(steps[1:], start=2):
        momentum = min(0.5, (1 + t) / (10 + t))
        expected = [momentum * e + (1 - momentum) * w for e, w in zip(expected, weights, strict=True)]
    for mine, worked in zip(seen[1], expected, strict=True):
        np.testing.assert_allclose(mine, worked, rtol=1e-5, atol=1e-6)
    assert not np.allclose(seen[1][0], plain.get_weights()[0], atol=1e-3)
    # The epoch's validation measured the average, not the training weights.
    average.swap_in()
    assert seen["val_loss"] == pytest.approx(averaged.evaluate(features, targets, verbose=0), rel=1e-5)
    # A checkpoint taken with the average in place resumes the training weights and the average.
    tf.train.Checkpoint(model=averaged, weight_average=average.slots).write(str(tmp_path / "ckpt"))
    other = tiny_model()
    resumed = WeightAverage(other, momentum=0.5)
    tf.train.Checkpoint(model=other, weight_average=resumed.slots).read(str(tmp_path / "ckpt")).expect_partial()
    resumed.resumed()
    for mine, theirs in zip(other.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)
    assert int(resumed.slots.updates) == 8
    resumed.swap_in()
    for mine, worked in zip(other.get_weights(), expected, strict=True):
        np.testing.assert_allclose(mine, worked, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scheme", ["file", "s3a"])
def test_store_round_trip_and_state_written_last(scheme, tmp_path, request, monkeypatch):
    if scheme == "s3a":
        for name, value in request.getfixturevalue("s3_store").items():
            monkeypatch.setenv(name, value)
        url = f"s3a://dermspark/round-trip-{tmp_path.name}/run"
    else:
        url = f"file://{tmp_path}/store/run"
    store = CheckpointStore(url)
    assert store.state() is None
    model = tiny_model()
    store.save("stage0-epoch1", tf.train.Checkpoint(model=model))
    store.write_state({"last": "stage0-epoch1"})
    other = tiny_model()
    store.restore("stage0-epoch1", tf.train.Checkpoint(model=other))
    for saved, restored in zip(model.weights, other.weights, strict=True):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    assert store.state() == {"last": "stage0-epoch1"}
    store.delete("stage0-epoch1")
    assert [path.rsplit("/", 1)[1] for path in store.fs.ls(store.root)] == ["state.json"]
    store.close()


def test_cosine_schedule_warms_up_then_falls_to_zero_at_the_stages_last_step():
    from dermspark.train.optimization import learning_rate

    stage = StagePlan(learning_rate=1e-3, decay_steps=0, cosine=True, epochs=25)
    # 2 processes, 10 steps an epoch, 3 warmup epochs: from 1e-3 to 2e-3 over 30 steps, then
    # half a cosine over the 220 steps left.
    rate = learning_rate(stage, processes=2, steps_per_epoch=10, warmup=3)
    expected = {0: 1e-3, 15: 1.5e-3, 30: 2e-3, 30 + 55: 2e-3 * (1 + np.cos(np.pi / 4)) / 2, 30 + 110: 1e-3, 250: 0.0}
    for step, value in expected.items():
        assert float(rate(step)) == pytest.approx(value, rel=1e-5, abs=1e-12), step
    # A later stage has no warmup: the cosine starts at once from the scaled rate.
    later = learning_rate(dataclasses.replace(stage, epochs=4), processes=2, steps_per_epoch=10, warmup=0)
    assert [float(later(step)) for step in (0, 20, 40)] == pytest.approx([2e-3, 1e-3, 0.0], rel=1e-5, abs=1e-12)
    assert learning_rate(dataclasses.replace(stage, cosine=False), processes=2, steps_per_epoch=10) == pytest.approx(
        2e-3
    )
