"""How ingest's and scoring's cost grows with the archive: N, 2N and 4N images, one session.

The larger archives are the real 200x150 HAM10000 set linked again (hard links where the file
system allows) under new image and lesion ids (copy k of ISIC_0024306 is ISIC_k0024306, of lesion
HAM_0000118 HAM_k0000118), with matching metadata rows, in a work folder outside the repository:
4N is 40,060 images. Every size runs --rounds times, in turns; the bench prints the wall time
of each run of the whole job, and a straight line through them all gives the marginal rate
(images per second the job adds per image, 1 / slope) and the fixed cost (the intercept).
Beside each job it samples, every 0.2 s, the resident memory of the driver (this Python
process), of the JVM (in local mode also the executor's threads) and of the Python workers that
decode and predict: the driver's and the workers' must stay flat as N grows. The JVM's resident
set follows its heap's size, which grows towards spark.driver.memory and is not given back, so
the bench also reads the heap the JVM still holds after each run and a full collection ("JVM
live").

At each size the peer a user would write instead runs right after the job, in the same session:
for ingest Petastorm's documented pattern (ingest_bench.py), for scoring Spark's `predict_batch_udf`
pattern (score_bench.py); their marginal rates are fitted the same way. The single-process loop
(ingest; it takes its turn at each size too, and its median turn counts) and plain Keras
`predict_on_batch` in one process (scoring) give the reference rate. For ingest the bench also
fits each run's time counted in the loop's images of the turn beside it: the same ratio with
the machine's drift between turns taken out.

    .venv/bin/python bench/scale_bench.py [--data ../shared/data] [--work /tmp/dermspark-scale]
        [--copies 1 2 4] [--rounds 2] [--sizes 75x100 299x299] [--model benbrahim_cnn] [--codec png|raw]
        [--driver-memory 4g]
"""

import argparse
import csv
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _link(target: str, link: str) -> None:
    """A hard link where the file system allows one: to the job it is a plain file, as in a real
    archive. A symbolic link (another file system) costs the listing a stat per file that a
    real archive does not: 0.2 s of driver time at 40,060 files, against 0.04 s."""
    if os.path.lexists(link):
        if not os.path.islink(link) and os.path.samefile(link, target):
            return
        os.remove(link)  # a symbolic link, or a --work folder kept from an archive elsewhere
    try:
        os.link(target, link)
    except OSError:
        os.symlink(target, link)


def build_archive(source: str, folder: str, copies: int) -> int:
    """The source archive linked `copies` times under new ids, metadata rows to match."""
    images = os.path.join(folder, "images")
    os.makedirs(images, exist_ok=True)
    with open(os.path.join(source, "HAM10000_metadata.csv"), newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    out = []
    for copy in range(copies):
        for row in rows:
            prefix = "" if copy == 0 else str(copy)
            image_id = row["image_id"].replace("ISIC_", "ISIC_" + prefix)
            link, target = (
                os.path.join(images, image_id + ".jpg"),
                os.path.join(source, "images", row["image_id"] + ".jpg"),
            )
            _link(target, link)
            out.append({**row, "image_id": image_id, "lesion_id": row["lesion_id"].replace("HAM_", "HAM_" + prefix)})
    with open(os.path.join(folder, "HAM10000_metadata.csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(out)
    return len(out)


class PeakMemory:
    """Peak resident memory, sampled: the driver's Python (this process), the JVM (in local mode
    the driver and the executor's threads; its heap grows towards spark.driver.memory before it
    collects, so its peak says little about what the job keeps) and the Python workers (every
    other descendant, summed while they run side by side)."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self._psutil, self._interval = psutil, interval
        self.driver = self.jvm = self.workers = 0
        self.jvm_live = 0  # set by timed(): the JVM's heap after the run and a full collection
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = self._psutil.Process()
        driver, jvm, workers = me.memory_info().rss, 0, 0
        for child in me.children(recursive=True):
            try:
                rss = child.memory_info().rss
                if "java" in child.name():
                    jvm += rss
                else:
                    workers += rss
            except self._psutil.NoSuchProcess:
                pass
        self.driver, self.jvm, self.workers = max(self.driver, driver), max(self.jvm, jvm), max(self.workers, workers)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def fit(counts: list[int], seconds: list[float]) -> tuple[float, float]:
    """Marginal images per second and fixed seconds of the straight line through the sizes."""
    slope, intercept = np.polyfit(counts, seconds, 1)
    return 1.0 / slope, intercept


def live_heap(spark) -> int:
    """Bytes the JVM's heap holds after a full collection: what the JVM keeps, where its resident
    set follows the heap's size, which grows towards spark.driver.memory (with the peers' runs in
    the same session too) and is not given back."""
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.gc()
    return jvm.java.lang.management.ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed()


def timed(run, spark) -> tuple[float, float, PeakMemory]:
    """Wall seconds, CPU seconds of the whole process tree (driver, JVM, Python workers), memory."""
    from score_bench import _process_tree_cpu, cpu_seconds_between

    with PeakMemory() as memory:
        cpu, started = _process_tree_cpu(), time.perf_counter()
        run()
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds_between(cpu, _process_tree_cpu())
    memory.jvm_live = live_heap(spark)
    return elapsed, cpu, memory


def report(
    title: str,
    counts: list[int],
    job: list[tuple[float, float, PeakMemory]],
    peer: list[float],
    peer_name: str,
    reference: tuple[float, float],
    reference_name: str,
    turns: list[float] | None = None,
) -> None:
    """reference: images per second and per CPU second of the single-process way; turns: its
    rate in the turn beside each run, where it took one."""
    rate, fixed = fit(counts, [seconds for seconds, _, _ in job])
    per_core, _ = fit(counts, [cpu for _, cpu, _ in job])
    peer_rate, peer_fixed = fit(counts, peer)
    print(f"\n{title}")
    print(
        f"{'images':>8} {'job s':>8} {'job img/s':>10} {'job CPU s':>10} {'peer s':>8} {'driver MB':>10} "
        f"{'JVM MB':>8} {'JVM live MB':>12} {'workers MB':>11}"
    )
    for count, (seconds, cpu, memory), peer_seconds in zip(counts, job, peer, strict=True):
        print(
            f"{count:8d} {seconds:8.1f} {count / seconds:10.1f} {cpu:10.1f} {peer_seconds:8.1f} "
            f"{memory.driver / 2**20:10.0f} {memory.jvm / 2**20:8.0f} {memory.jvm_live / 2**20:12.0f} "
            f"{memory.workers / 2**20:11.0f}"
        )
    print(f"job: marginal rate {rate:.1f} img/s, fixed cost {fixed:.1f} s, marginal {per_core:.1f} img per CPU second")
    print(f"{peer_name}: marginal rate {peer_rate:.1f} img/s, fixed cost {peer_fixed:.1f} s")
    print(f"{reference_name}: {reference[0]:.1f} img/s, {reference[1]:.1f} img per CPU second")
    largest = [
        peer_seconds / seconds
        for count, (seconds, _, _), peer_seconds in zip(counts, job, peer, strict=True)
        if count == max(counts)
    ]
    print(
        f"job marginal / peer marginal {rate / peer_rate:.2f}; job / peer at {max(counts)} images "
        f"{statistics.median(largest):.2f} (median of {len(largest)})"
    )
    print(f"job marginal / {reference_name} {rate / reference[0]:.2f}; per CPU second {per_core / reference[1]:.2f}")
    if turns:
        # Each run's time counted in images the reference did in its turn beside it: the
        # machine's drift from minute to minute cancels, and the slope is the ratio itself.
        ratio, fixed_images = fit(counts, [seconds * turn for (seconds, _, _), turn in zip(job, turns, strict=True)])
        print(
            f"job marginal / {reference_name}, each run in its neighbouring turn's images: {ratio:.2f} "
            f"(fixed cost {fixed_images / statistics.median(turns):.1f} s at the median turn)"
        )
    first, last = job[0][2], job[-1][2]
    print(
        f"peak memory at {counts[-1]} over at {counts[0]} images: driver {last.driver / first.driver:.2f}, "
        f"JVM {last.jvm / first.jvm:.2f} (its live heap after the run {last.jvm_live / first.jvm_live:.2f}), "
        f"workers {last.workers / first.workers:.2f}",
        flush=True,
    )


def spark_jobs(spark) -> int:
    """Spark jobs so far in this session (ids are sequential): each small job is fixed cost."""
    return max(spark.sparkContext.statusTracker().getJobIdsForGroup(None), default=-1) + 1


def _seconds(run, *args) -> float:
    """Wall seconds of run(*args), whose own rate is ignored: the fit wants times."""
    started = time.perf_counter()
    run(*args)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("DERMSPARK_DATA", os.path.join(ROOT, "..", "shared", "data")))
    parser.add_argument("--work", help="where the linked archives go (default: a temporary folder, removed)")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 2, 4], help="archive sizes, in copies of N")
    parser.add_argument("--rounds", type=int, default=2, help="times every size runs, in turn")
    parser.add_argument("--sizes", nargs="+", default=["75x100", "299x299"], help="ingest's image sizes")
    parser.add_argument("--model", default="benbrahim_cnn", help="the (untrained) model scoring runs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip", choices=["ingest", "score"], help="time only the other job")
    parser.add_argument("--codec", default="png", choices=["png", "raw"], help="ingest --codec, for its peers too")
    parser.add_argument(
        "--driver-memory",
        default="4g",
        help="spark.driver.memory: the JVM's heap grows towards it before collecting; a small "
        "one shows what the job needs",
    )
    args = parser.parse_args()
    source = os.path.join(os.path.abspath(args.data), "ham10000-200x150")
    if not os.path.isfile(os.path.join(source, "HAM10000_metadata.csv")):
        sys.exit(f"no HAM10000 archive at {source}: pass --data or set DERMSPARK_DATA")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Each job's stages with their times (dermspark.runtime.stage): where a job's time goes.
    logging.basicConfig(format="    %(message)s")
    logging.getLogger("dermspark").setLevel(logging.INFO)

    from dermspark.images import parse_size
    from dermspark.ingest.pipeline import run_ingest
    from dermspark.score.job import run_score
    from dermspark.settings.ingest import IngestSettings
    from dermspark.settings.score import ScoreSettings
    from ingest_bench import loop, petastorm_pattern
    from pyspark.sql import SparkSession
    from score_bench import make_bundle, plain_keras, predict_batch_udf_pattern

    work = args.work or tempfile.mkdtemp(prefix="dermspark-scale-")
    archives, counts = {}, []
    for copies in args.copies:
        archives[copies] = os.path.join(work, f"archive-{copies}n")
        counts.append(build_archive(source, archives[copies], copies))
    print(f"archives of {', '.join(f'{count:,}' for count in counts)} images under {work}", flush=True)
    # Every size once a round, rounds after each other: the machine's speed drifts by a fifth
    # or more within minutes, and the line is fitted through every run.
    sizes = [copies for _ in range(args.rounds) for copies in args.copies]
    rounds = [counts[args.copies.index(copies)] for copies in sizes]
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("scale-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", args.driver_memory)
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    files = sorted(os.path.join(source, "images", name) for name in os.listdir(os.path.join(source, "images")))
    try:
        if args.skip != "ingest":
            for size in args.sizes:
                output = os.path.join(work, "ingested")

                def ingest(archive: str, output: str = output, size: str = size) -> None:
                    result = run_ingest(
                        spark,
                        IngestSettings(input=archive, output=output, sizes=size, codec=args.codec, links="follow"),
                    )
                    if result.manifest.written != result.manifest.inputs:
                        sys.exit(f"ingest wrote {result.manifest.written} of {result.manifest.inputs} inputs")

                shutil.rmtree(output, ignore_errors=True)
                before = spark_jobs(spark)
                # Warm-up on the largest archive: the JVM, the Python workers, imports, and the
                # JVM's compiler, which in the first 40,060-image run spent 2.5 CPU s on Spark's
                # task code (C2 threads, against 0.4-0.8 s in later runs), taken from the decode.
                ingest(archives[max(args.copies)])
                shutil.rmtree(output)
                jobs = spark_jobs(spark) - before
                print(f"ingest at {size}: {jobs} Spark job{'' if jobs == 1 else 's'} a run", flush=True)
                petastorm_pattern(spark, archives[args.copies[0]], size, work, args.codec)
                job, peer, loops = [], [], []
                for copies in sizes:  # the job, its peer and the loop take turns at each size
                    job.append(timed(lambda archive=archives[copies]: ingest(archive), spark))
                    # Removed untimed, as the peer removes its own: at 299x299 the 40,060-image
                    # output is gigabytes, and deleting it was timed into the next run.
                    shutil.rmtree(output)
                    peer.append(_seconds(petastorm_pattern, spark, archives[copies], size, work, args.codec))
                    cpu, seconds = time.process_time(), loop(files, parse_size(size), args.codec)
                    loops.append((len(files) / seconds, len(files) / (time.process_time() - cpu)))
                # The machine's speed drifts within minutes: the loop's median turn.
                print(f"single-process loop, each turn: {', '.join(f'{rate:.0f}' for rate, _ in loops)} img/s")
                report(
                    f"ingest at {size}, --codec {args.codec}",
                    rounds,
                    job,
                    peer,
                    "Petastorm pattern",
                    tuple(statistics.median(values) for values in zip(*loops, strict=True)),
                    "single-process loop",
                    [rate for rate, _ in loops],
                )
        if args.skip != "score":
            bundle = make_bundle(work, args.model)

            scores = os.path.join(work, "scores")
            shutil.rmtree(scores, ignore_errors=True)

            def score(archive: str) -> None:
                summary = run_score(
                    spark,
                    ScoreSettings(
                        model=bundle,
                        input=os.path.join(archive, "images"),
                        output=scores,
                        batch_size=args.batch_size,
                        links="follow",
                    ),
                )
                if summary.scored != summary.inputs:
                    sys.exit(f"scoring scored {summary.scored} of {summary.inputs}: {summary.by_reason}")

            def peer(archive: str) -> float:
                return predict_batch_udf_pattern(
                    spark, bundle, os.path.join(archive, "images"), os.path.join(work, "peer-scores"), args.batch_size
                )

            score(archives[args.copies[0]])  # warm-up
            shutil.rmtree(scores)
            peer(archives[args.copies[0]])
            job, peers = [], []
            for copies in sizes:
                job.append(timed(lambda archive=archives[copies]: score(archive), spark))
                shutil.rmtree(scores)  # untimed, as the peer's
                peers.append(_seconds(peer, archives[copies]))
            plain_rate, plain_cores = plain_keras(bundle, files, args.batch_size)
            report(
                f"scoring with {args.model}",
                rounds,
                job,
                peers,
                "predict_batch_udf pattern",
                (plain_rate, plain_rate / plain_cores),
                "plain Keras predict_on_batch",
            )
    finally:
        spark.stop()
        if not args.work:
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
