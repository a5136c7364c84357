"""A fix for a race in Petastorm 0.13.1, its last release, that ends finite reads early.

ThreadPool.get_results decides the read is over when every worker is idle with nothing queued
and, checked afterwards, the ventilator has completed. If the ventilator thread hands out the
remaining row groups between those two checks, the reader stops early: with no rows at all when
it happens at the start, silently short when it happens later (uber/petastorm#71 describes the
same ambiguity). Endless readers (num_epochs=None) never complete, so only finite reads, such
as evaluation on the test split, are exposed. Reading completion first closes the gap: if
ventilation was over before the workers were all seen idle, the read really is over.
"""

from petastorm.workers_pool.thread_pool import ThreadPool

_original_all_workers_done = ThreadPool.all_workers_done


def _all_workers_done(self) -> bool:
    ventilation_over = self._ventilator is None or self._ventilator.completed()
    return ventilation_over and _original_all_workers_done(self)


def apply() -> None:
    """Idempotent; call before creating readers in any process that reads finitely."""
    ThreadPool.all_workers_done = _all_workers_done

