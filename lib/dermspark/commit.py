"""Committing outputs that several jobs may write at once: a lock per output, held only while a
job commits, and the checks a job repeats under it, since another job may have committed since
it started.

The lock is a file beside the output (`.NAME.lock`) or inside it (the predictions table's
`_commit.lock`). On a local disk (or NFS) it is an flock, which the kernel releases when its
holder dies. On S3 it is a lease: an object created only if absent (a conditional PUT), holding
its owner and an expiry that the holder renews while it commits; a lease whose holder died is
taken over by one conditional overwrite, which only one job can win. Other stores have no
conditional write through fsspec: there the lock is taken by looking first, and jobs that
overlap on one output are not guarded (docs/score.md).
"""

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid

from dermspark import DermsparkError, __version__, storage
from dermspark.storage import join

log = logging.getLogger(__name__)

LEASE_SECONDS = 600.0
# How long a job waits for another's commit before it gives up in one line.
WAIT_SECONDS = 1800.0
POLL_SECONDS = 0.2
MODES = ("error", "overwrite")
# In every output folder: the job that wrote it.
MARKER = "_dermspark.json"
KINDS = {
    "ingest": "an ingested dataset",
    "train": "a training output",
    "score": "a predictions table",
    "monitor": "a monitoring report",
    "bundle": "a model bundle",
}


def sibling_lock(final_url: str) -> str:
    parent, _, name = final_url.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.lock"


@contextlib.contextmanager
def locked(lock_url: str, what: str, wait: float = WAIT_SECONDS, lease: float = LEASE_SECONDS):
    """Holds the lock at lock_url for the block; `what` names the output in the one-line error
    a job gives when another holds it for longer than `wait` seconds."""
    path = storage.local_path(lock_url)
    if path is not None:
        with _flock(path, what, wait):
            yield
    else:
        with _lease(lock_url, what, wait, lease):
            yield


def _waited_too_long(what: str, wait: float, holder: str) -> DermsparkError:
    return DermsparkError(
        f"another job has been committing to {what} for over {wait:g} s ({holder}); "
        "nothing was written: run again once it has finished"
    )


@contextlib.contextmanager
def _flock(path: str, what: str, wait: float):
    """The holder removes the file when it is done, so none is left beside the output; a job that
    locked a file removed meanwhile locked nothing and tries again."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    deadline = time.monotonic() + wait
    while True:
        handle = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.path.exists(path) and os.stat(path).st_ino == os.fstat(handle).st_ino:
                break
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(handle)
                raise _waited_too_long(what, wait, f"lock {path}") from None
        os.close(handle)
        time.sleep(POLL_SECONDS)
    try:
        yield
    finally:
        os.unlink(path)
        os.close(handle)  # releases the flock


def _lease_body(owner: str, lease: float) -> bytes:
    return json.dumps(
        {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(), "expires": time.time() + lease}
    ).encode()


def _version(url: str) -> str:
    """The version of a lease this job has just written."""
    found = storage.read_versioned(url)
    if found is None:
        raise DermsparkError(f"commit: the lease {url} was deleted as it was taken; run the job again")
    return found[1]


def _acquire(url: str, owner: str, what: str, wait: float, lease: float) -> str:
    """The lease's version once this job holds it."""
    deadline = time.monotonic() + wait
    while True:
        if storage.create_exclusive(url, _lease_body(owner, lease)):
            return _version(url)
        found = storage.read_versioned(url)
        if found is not None:
            held = json.loads(found[0])
            if held["expires"] < time.time():
                log.warning("commit: taking over the expired lease %s of a job on %s", url, held["host"])
                if storage.replace_if(url, _lease_body(owner, lease), found[1]):
                    return _version(url)
            elif time.monotonic() > deadline:
                raise _waited_too_long(what, wait, f"lease {url}, held by a job on {held['host']}")
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def _lease(url: str, what: str, wait: float, lease: float):
    owner = uuid.uuid4().hex
    version = [_acquire(url, owner, what, wait, lease)]
    stop = threading.Event()

    def renew() -> None:
        # A third of the lease between renewals: one missed renewal still leaves it held.
        while not stop.wait(lease / 3):
            found = storage.replace_if(url, _lease_body(owner, lease), version[0]) and storage.read_versioned(url)
            if not found:
                log.warning("commit: lost the lease %s", url)
                return
            version[0] = found[1]

    renewer = threading.Thread(target=renew, name="dermspark-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        found = storage.read_versioned(url)
        if found is not None and json.loads(found[0])["owner"] == owner:
            storage.delete(url)


def prepare_output(url: str, mode: str, job: str) -> None:
    """Checked before any work, so a job that would not be allowed to commit fails at once; the
    commit checks again (staged_output)."""
    check_kind(url, job)
    if mode == "error" and storage.exists(url):
        raise DermsparkError(f"output {url} already exists; pass --mode overwrite to replace it")


def mark(url: str, job: str) -> None:
    """Records in an output folder which job wrote it (MARKER), so other jobs refuse it."""
    storage.write_text(join(url, MARKER), json.dumps({"written_by": job, "dermspark": __version__}))


def kind_of(url: str) -> str | None:
    """The job that wrote a folder: its MARKER, or for folders written before it, what they hold;
    "bundle" for a model bundle; None for a folder dermspark did not write."""
    if storage.exists(join(url, MARKER)):
        return json.loads(storage.read_text(join(url, MARKER)))["written_by"]
    if storage.exists(join(url, "manifest.json")):
        return "bundle" if "model_sha256" in json.loads(storage.read_text(join(url, "manifest.json"))) else "ingest"
    if storage.exists(join(url, "cv.json")) or storage.exists(join(url, "model", "manifest.json")):
        return "train"
    # A scoring run marks its output at its start, under the lock its first files are.
    if any(storage.exists(join(url, name)) for name in ("predictions", "runs", "_staging", "_commit.lock")):
        return "score"
    return None


def check_kind(url: str, job: str, flag: str = "--output") -> None:
    """A job writes only into its own kind of folder (or a new or empty one): never into another
    job's output, nor into a folder dermspark did not write, whatever --mode says."""
    if not storage.exists(url) or not storage.glob(url, "*"):
        return
    kind = kind_of(url)
    if kind == job:
        return
    what = f"holds {KINDS[kind]}" if kind in KINDS else "is not empty and was not written by dermspark"
    raise DermsparkError(f"{flag} {url} {what}; {job} writes {KINDS[job]}: choose another {flag}")


@contextlib.contextmanager
def staged_output(final_url: str, mode: str = "overwrite"):
    """Yields a hidden sibling folder to write into. When the block finishes, the folder replaces
    final_url, under final_url's lock; when it fails, it is removed. With mode "error", an output
    another job committed meanwhile stops this one in one line and stays as it is."""
    staging = storage.staging_url(final_url)
    try:
        yield staging
        with locked(sibling_lock(final_url), final_url):
            if mode == "error" and storage.exists(final_url):
                raise DermsparkError(
                    f"another job wrote {final_url} while this one ran; this one wrote nothing: "
                    "pass --mode overwrite to replace that output"
                )
            _replace(staging, final_url)
    finally:
        with contextlib.suppress(Exception):
            storage.delete(staging)


def _replace(staging: str, final_url: str) -> None:
    storage.delete(final_url)
    try:
        storage.move(staging, final_url)
    except BaseException:
        # A copy cut short on an object store: what reached the final path goes too.
        with contextlib.suppress(Exception):
            storage.delete(final_url)
        raise
