"""Where a training run stands, and the two decisions made from it: when a stage stops early
and which epoch's weights it keeps. The worker's loop owns the one TrainingState; the
checkpoint store only saves it (as state.json, beside the checkpoints it names) and reads it
back, so a rerun with the same run id resumes exactly here.

Checkpoint tags: `stageS-epochE` is every epoch's model and optimizer; `best-stageS-epochE` the
best epoch's model, kept while a stage that ends on its best epoch runs.
"""

import dataclasses
import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dermspark.train.worker_config import StagePlan

# What early stopping and a stage's best epoch go by, and when a value beats the best so far.
MONITORS = {"val_loss": operator.lt, "val_balanced_accuracy": operator.gt}


@dataclass
class EpochOutcome:
    improved: bool  # the monitored value beat the stage's best so far
    stop: bool  # early stopping: no improvement for the stage's patience
    stale: list[str]  # checkpoint tags no resume needs any more


@dataclass
class TrainingState:
    stage: int = 0  # the stage under way (or the number of stages, once finished)
    epoch: int = 0  # epochs of that stage completed
    last: str | None = None  # tag of the last complete epoch
    best: str | None = None  # tag of the best epoch so far, for stages that end on it
    best_value: float | None = None
    wait: int = 0  # epochs since the monitored value last improved
    start_from: str | None = None  # the previous stage's chosen weights, where this stage began
    finished: bool = False
    history: dict = field(default_factory=dict)  # metric -> one value per epoch, all stages
    stage_ends: list = field(default_factory=list)  # epochs in history at each stage's end
    stopped_early: list = field(default_factory=list)  # {"stage", "epoch"}
    ended_on: list = field(default_factory=list)  # {"stage", "epoch", "by"}: the weights kept

    @classmethod
    def from_dict(cls, saved: dict | None) -> "TrainingState":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in (saved or {}).items() if key in known})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def stage_done(self, stage: "StagePlan") -> bool:
        """Every epoch run, or early stopping's test met: no improvement for `patience` epochs."""
        patience = stage.early_stopping_patience
        stopped = bool(patience) and self.best_value is not None and self.wait >= patience
        return self.epoch >= stage.epochs or stopped

    def end_epoch(self, epoch: int, logs: dict, stage: "StagePlan") -> EpochOutcome:
        """Records epoch (0-based within the stage) and decides what to keep and whether to stop."""
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        previous = [self.last, self.best]
        self.epoch = epoch + 1
        self.last = f"stage{self.stage}-epoch{self.epoch}"
        monitor = stage.monitor
        value = logs.get(monitor)
        improved = value is not None and (self.best_value is None or MONITORS[monitor](value, self.best_value))
        self.wait = 0 if improved else self.wait + 1
        if improved and value is not None:
            self.best_value = float(value)
            if stage.restore_best:
                self.best = f"best-stage{self.stage}-epoch{self.epoch}"
        stop = self.epoch < stage.epochs and self.stage_done(stage)
        if stop:
            self.stopped_early.append({"stage": self.stage, "epoch": self.epoch})
        keep = {self.last, self.best, self.start_from}
        return EpochOutcome(improved, stop, [tag for tag in previous if tag and tag not in keep])

    def chosen(self, stage: "StagePlan") -> str:
        """The weights a finished stage keeps: its best epoch's, or its last."""
        chosen = self.best if stage.restore_best and self.best else self.last
        if chosen is None:
            raise RuntimeError(f"stage {self.stage} ended before its first epoch did")
        return chosen

    def end_stage(self, stage: "StagePlan", stages: int) -> list[str]:
        """Moves on to the next stage from this one's chosen weights; returns the stale tags."""
        chosen = self.chosen(stage)
        stale = sorted(tag for tag in {self.last, self.best, self.start_from} if tag and tag != chosen)
        self.stage_ends.append(len(self.history.get("loss", [])))
        self.ended_on.append(
            {
                "stage": self.stage,
                "epoch": int(chosen.rsplit("epoch", 1)[1]),
                "by": f"best {stage.monitor}" if chosen == self.best else "last epoch",
            }
        )
        self.stage, self.epoch, self.start_from = self.stage + 1, 0, chosen
        self.last, self.best, self.best_value, self.wait = None, None, None, 0
        self.finished = self.stage == stages
        return stale
