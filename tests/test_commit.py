"""Commits that concurrent jobs share, on a local disk and on S3 (moto's server on 127.0.0.1):
the lock excludes, a dead holder's lock is taken over, a staged output's second writer stops in
one line, and a scoring commit killed at any step is completed by the next run."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from dermspark import DermsparkError, commit, storage
from dermspark.score.output import JOURNAL, ScoringOutput


def _at_once(count: int, work) -> list:
    """work(index) in `count` threads released together; what each returned or raised."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_the_lock_lets_one_holder_in_at_a_time(root):
    lock, inside, most = storage.join(root, "_commit.lock"), [0], [0]

    def work(index: int) -> None:
        with commit.locked(lock, root):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.1)
            inside[0] -= 1

    assert _at_once(4, work) == [None] * 4
    assert most[0] == 1
    assert not storage.exists(lock)


def test_waiting_too_long_for_the_lock_is_one_line(root):
    lock = storage.join(root, "_commit.lock")
    with commit.locked(lock, root), pytest.raises(DermsparkError) as raised, commit.locked(lock, "OUT", wait=0.5):
        pass
    assert "another job has been committing to OUT for over 0.5 s" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_dead_holders_lease_is_taken_over_and_a_live_one_is_not(root):
    lock = storage.join(root, "_commit.lock")
    if storage.local_path(root) is not None:
        # A holder killed with SIGKILL: the kernel releases its flock at once.
        path = storage.local_path(lock)
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                (
                    "import fcntl, os, sys, time; os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True); "
                    "h = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR); fcntl.flock(h, fcntl.LOCK_EX); "
                    "print('held', flush=True); time.sleep(600)"
                ),
                path,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DermsparkError, match="another job"), commit.locked(lock, root, wait=0.5):
            pass
        holder.kill()
        holder.wait()
    else:
        body = {"owner": "dead", "host": "elsewhere", "pid": 1, "expires": time.time() + 60}
        storage.write_text(lock, json.dumps(body))
        with pytest.raises(DermsparkError, match="held by a job on elsewhere"), commit.locked(lock, root, wait=0.5):
            pass
        storage.write_text(lock, json.dumps({**body, "expires": time.time() - 1}))
    with commit.locked(lock, root, wait=5):
        pass
    assert not storage.exists(lock)


def test_an_s3_lease_is_renewed_while_held(s3_store, monkeypatch, tmp_path):
    for name, value in s3_store.items():
        monkeypatch.setenv(name, value)
    lock = f"s3://dermspark/lease-{tmp_path.name}/_commit.lock"
    with commit.locked(lock, "OUT", lease=0.6):
        first = json.loads(storage.read_versioned(lock)[0])["expires"]
        time.sleep(0.9)
        assert json.loads(storage.read_versioned(lock)[0])["expires"] > first
    assert not storage.exists(lock)


def test_of_two_jobs_committing_one_output_with_mode_error_one_wins_whole(root):
    final = storage.join(root, "out")

    def work(index: int) -> str:
        with commit.staged_output(final, "error") as staging:
            for name in ("a", "b", "manifest.json"):
                storage.write_text(storage.join(staging, name), f"job {index}")
        return f"job {index}"

    results = _at_once(2, work)
    winners = [result for result in results if isinstance(result, str)]
    losers = [result for result in results if isinstance(result, DermsparkError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "another job wrote" in str(losers[0]) and "this one wrote nothing" in str(losers[0])
    assert {storage.read_text(storage.join(final, name)) for name in ("a", "b", "manifest.json")} == set(winners)
    assert storage.glob(root, ".*") == []


def _half_committed(root: str) -> ScoringOutput:
    """A version with one earlier run, and a run staged to replace it (--mode overwrite) whose
    journal is written: the state a commit starts its moves from."""
    output = ScoringOutput(None, storage.join(root, "scores"), "v1", "2026-12-05", "new")
    earlier = storage.join(output.version_url, "scoring_date=2026-12-04", "run_id=old")
    storage.write_text(storage.join(earlier, "part-0.parquet"), "old rows")
    storage.write_text(storage.join(output.url, "runs", "old", "summary.json"), "{}")
    storage.write_text(storage.join(output.staged_rows, "part-0.parquet"), "new rows")
    storage.write_text(storage.join(output.staged_record, "summary.json"), "{}")
    storage.write_text(
        storage.join(output.staging, JOURNAL),
        json.dumps(
            {
                "run_id": "new",
                "replace_version": True,
                "has_rows": True,
                "version_url": output.version_url,
                "partition_url": output.partition_url,
            }
        ),
    )
    return output


@pytest.mark.parametrize("killed_after", [0, 1, 2, 3])
def test_a_commit_killed_after_any_step_is_completed_by_the_next_run(root, killed_after):
    output = _half_committed(root)
    steps = [
        lambda: storage.move(output.version_url, storage.join(output.staging, "replaced")),
        lambda: storage.move(output.staged_rows, output.partition_url),
        lambda: storage.move(output.staged_record, storage.join(output.url, "runs", "new")),
    ]
    for step in steps[:killed_after]:
        step()
    output.repair()
    assert output.runs() == {"new"}
    assert storage.read_text(storage.join(output.partition_url, "part-0.parquet")) == "new rows"
    assert storage.exists(storage.join(output.url, "runs", "new", "summary.json"))
    assert not storage.exists(output.staging)


def test_rows_of_a_run_killed_between_renames_by_older_code_get_their_record(root):
    output = ScoringOutput(None, storage.join(root, "scores"), "v1", "2026-12-05", "r1")
    storage.write_text(storage.join(output.partition_url, "part-0.parquet"), "rows")
    storage.write_text(storage.join(output.staged_record, "summary.json"), json.dumps({"scored_with": {}}))
    output.repair()
    assert storage.exists(storage.join(output.url, "runs", "r1", "summary.json"))
    assert not storage.exists(output.staging)
    storage.delete(storage.join(output.url, "runs", "r1"))
    with pytest.raises(DermsparkError, match="has rows of scoring run r1 but not its record"):
        output.check("error", True, {"top_k": 1})


def test_abandoning_a_journaled_commit_leaves_it_for_repair(root):
    output = _half_committed(root)
    output.abandon()
    assert storage.exists(storage.join(output.staging, JOURNAL))
    other = ScoringOutput(None, output.url, "v1", "2026-12-05", "other")
    other.abandon()
    assert os.path.basename(output.staging) in storage.glob(storage.join(output.url, "_staging"), "*")
