"""The function every Horovod rank runs inside a Spark task.

As in Horovod's Spark examples: imports inside the function (it is pickled to executors),
hvd.init() first, and side effects (checkpoints, evaluation, bundle) on rank 0 only. It runs the
plan's stages in order, resuming from the checkpoint store when a run with this id got there.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dermspark.train.checkpoints import CheckpointStore
    from dermspark.train.epoch_log import EpochLog
    from dermspark.train.inputs import Inputs
    from dermspark.train.state import TrainingState
    from dermspark.train.worker_config import StagePlan, WorkerConfig


def epoch_end_callback(run: "RankRun", stage: "StagePlan", average=None):
    """The loop's own step after every epoch: the state records the epoch and decides (rank 0
    saves what it decided, then logs the epoch to TensorBoard and MLflow), and training stops
    where early stopping says. Every rank decides the same way: validation figures are averaged
    across ranks before this runs."""
    import tensorflow as tf

    state, store, model, rank, epoch_log = run.state, run.store, run.model, run.rank, run.epoch_log

    class EpochEnd(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            # Callbacks log the rate only in the epochs they act on; read it from the optimizer
            # instead, so the series has one value an epoch whatever schedule ran.
            logs = {
                key: value for key, value in (logs or {}).items() if key != "lr" and not key.startswith("learning_rate")
            }
            logs["learning_rate"] = tf.keras.backend.get_value(model.optimizer.learning_rate)
            outcome = state.end_epoch(epoch, logs, stage)
            if rank == 0:
                # TensorBoard before the checkpoint (a step written twice shows once) and MLflow
                # after it (a step missed is filled in by the driver; one logged twice would stay).
                if epoch_log is not None:
                    epoch_log.tensorboard(state.history)
                store.save_epoch(state, outcome, model, model.optimizer, average.slots if average is not None else None)
                if epoch_log is not None:
                    epoch_log.mlflow_epoch(state.history)
            if outcome.stop:
                self.model.stop_training = True

    return EpochEnd()


@dataclass
class RankRun:
    """What each phase of one rank's training shares."""

    config: "WorkerConfig"
    rank: int
    size: int
    store: "CheckpointStore"
    state: "TrainingState"  # the same on every rank
    resumed_from: dict | None
    inputs: "Inputs"
    validation: tuple | None
    model: Any  # a tf.keras.Model
    epoch_log: "EpochLog | None"  # rank 0's


def train(config: "WorkerConfig") -> dict | None:
    import horovod.tensorflow.keras as hvd

    hvd.init()

    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from dermspark import petastorm_compat

    # Without it, finite reads (validation, test) can end early (see the module).
    petastorm_compat.apply()
    run = _start(config, hvd.rank(), hvd.size())
    for index, stage in enumerate(config.plan.stages):
        _train_stage(run, index, stage)
    if run.resumed_from and run.resumed_from["finished"]:
        # A rerun of a finished run: the same final weights, evaluated and bundled again.
        assert run.state.start_from is not None  # a finished run starts from its last stage's
        run.store.restore(run.state.start_from, tf.train.Checkpoint(model=run.model))

    if run.rank != 0:
        run.store.close()
        return None
    from dermspark.train.finish import evaluate_and_bundle

    try:
        return evaluate_and_bundle(config, run.model, run.inputs, run.validation, run.state, run.resumed_from)
    finally:
        if run.epoch_log is not None:  # rank 0 has one
            run.epoch_log.close()
        run.store.close()


def _start(config: "WorkerConfig", rank: int, size: int) -> RankRun:
    """The rank's threads and seed, the state every rank shares, its inputs and its model."""
    import tensorflow as tf
    from horovod.tensorflow import broadcast_object

    from dermspark.models import create_model
    from dermspark.models.keras_file import load_keras
    from dermspark.models.weights import local_weights
    from dermspark.train.checkpoints import CheckpointStore
    from dermspark.train.epoch_log import EpochLog
    from dermspark.train.inputs import Inputs
    from dermspark.train.parent import carry_weights
    from dermspark.train.state import TrainingState

    # The cores Spark gave this rank's task (dermspark.cluster.rank_threads); more threads than
    # that only contend with the other tasks on the machine.
    tf.config.threading.set_intra_op_parallelism_threads(config.plan.threads_per_rank)
    tf.keras.utils.set_random_seed(config.seed + rank)
    store = CheckpointStore(config.store_url)
    epoch_log = EpochLog(config.tensorboard_url, config.mlflow) if rank == 0 else None
    # One state for every rank, the one rank 0 wrote and reads: ranks on different machines
    # must not each decide from what their own view of the store says.
    saved = broadcast_object(store.state() if rank == 0 else None, root_rank=0, name="checkpoint_state")
    state = TrainingState.from_dict(saved)
    resumed_from = {"stage": state.stage, "epoch": state.epoch, "finished": state.finished} if saved else None
    inputs = Inputs(config.dataset_url, rank, size, config.seed, config.folds)
    validation = inputs.load("validation", config.plan.batch_size)
    model = create_model(config.model, **config.model_options)
    if config.parent:  # before any checkpoint's weights, which take precedence
        weights = local_weights(config.parent["weights"], "")
        assert weights is not None  # a parent bundle's weights are a file, shipped by the driver
        carry_weights(model, load_keras(weights), config.parent["class_map"])
    return RankRun(config, rank, size, store, state, resumed_from, inputs, validation, model, epoch_log)


def _train_stage(run: RankRun, index: int, stage: "StagePlan") -> None:
    """One stage of the plan: its layers set trainable, compiled, resumed where a checkpoint
    says, fitted unless done, and the epoch it chose restored on every rank."""
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    from dermspark.models.inception import unfreeze_last
    from dermspark.train.averaging import WeightAverage
    from dermspark.train.keras_metrics import BalancedAccuracy
    from dermspark.train.optimization import make_loss, make_optimizer, warmup_epochs
    from dermspark.train.parent import set_trainable

    model, state, store, plan = run.model, run.state, run.store, run.config.plan
    if stage.unfreeze_last:
        unfreeze_last(model, stage.unfreeze_last)
    set_trainable(model, stage.trainable)
    if index < state.stage or state.finished:
        return
    warmup = warmup_epochs(index, stage)
    classes = len(run.config.classes)
    model.compile(
        optimizer=hvd.DistributedOptimizer(make_optimizer(stage, run.size, plan.steps_per_epoch, warmup)),
        loss=make_loss(plan.label_smoothing, classes),
        metrics=["accuracy", BalancedAccuracy(classes)],
    )
    # A new average for each stage, from the weights it starts with.
    average = WeightAverage(model, stage.ema) if stage.ema else None
    if state.epoch > 0:
        # Mid-stage: the model and the optimizer (moments, step count) as they were.
        model.optimizer.build(model.trainable_variables)
        extra = {"weight_average": average.slots} if average else {}
        assert state.last is not None  # epochs of this stage were saved
        store.restore(state.last, tf.train.Checkpoint(model=model, optimizer=model.optimizer, **extra))
        if average:
            average.resumed()
    elif state.start_from:
        # A new stage starts from the previous stage's chosen weights, with a new optimizer.
        store.restore(state.start_from, tf.train.Checkpoint(model=model))
    if not state.stage_done(stage):
        _fit(run, stage, warmup, average)
    # Rank 0 may still be writing its last checkpoint when another rank leaves fit.
    _barrier(f"stage{index}_fitted")
    # With an average, the model holds the training weights here, and every checkpoint's
    # model the average: the last epoch's too.
    if state.chosen(stage) != state.last or average:
        store.restore(state.chosen(stage), tf.train.Checkpoint(model=model))
    _barrier(f"stage{index}_restored")
    # What this stage started from and did not choose is no longer needed by any resume.
    stale = state.end_stage(stage, len(plan.stages))
    if run.rank == 0:
        store.write_state(state.to_dict())
        for tag in stale:
            store.delete(tag)


def _fit(run: RankRun, stage: "StagePlan", warmup: int, average) -> None:
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    from dermspark.train.inputs import EpochTimer

    plan, state, rank, inputs = run.config.plan, run.state, run.rank, run.inputs
    callbacks = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        # Before checkpointing: every rank then sees the same validation figures and
        # makes the same early-stopping decision.
        hvd.callbacks.MetricAverageCallback(),
    ]
    # A constant rate's warmup (a cosine schedule has its own): Horovod's callback sets
    # the rate before every batch. Momentum correction is off because it writes to
    # optimizer.momentum as to a variable, and Keras 2.11+ SGD holds a float.
    if state.epoch < warmup and not stage.cosine:
        callbacks.append(
            hvd.callbacks.LearningRateWarmupCallback(
                initial_lr=stage.learning_rate * run.size,
                warmup_epochs=warmup,
                steps_per_epoch=plan.steps_per_epoch,
                verbose=0,
                momentum_correction=False,
            )
        )
    callbacks.append(EpochTimer(state.history))
    before, after = average.callbacks() if average else ([], [])
    callbacks += [*before, epoch_end_callback(run, stage, average), *after]
    batch_size = plan.batch_size
    validation_data = (
        tf.data.Dataset.from_tensor_slices(run.validation[:2]).batch(batch_size) if run.validation is not None else None
    )
    cached_rows = plan.rows_per_shard[rank] if plan.cache_training else 0
    with inputs.reader("train", sharded=True, epochs=1 if cached_rows else None) as train_reader:
        run.model.fit(
            inputs.training(train_reader, batch_size, plan.sampling_rates, cached_rows),
            steps_per_epoch=plan.steps_per_epoch,
            initial_epoch=state.epoch,
            epochs=stage.epochs,
            validation_data=validation_data,
            class_weight=plan.class_weights,
            callbacks=callbacks,
            verbose=2 if rank == 0 else 0,
        )


def _barrier(name: str) -> None:
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    hvd.allreduce(tf.constant(0.0), name=name)
