"""Pretrained weights: a file on the driver (which Spark ships to the executors) or a URL on any
store; never a download from the internet at run time.

The training driver checks the file before anything starts (`resolve_weights`) and, on a
cluster, ships a driver-local one with SparkContext.addFile (`ship_weights`); builders then
turn what they were given into a local file (`local_weights`): the shipped copy in the
executor's working folder, or the URL fetched once into this machine's cache.
"""

import hashlib
import os
import tempfile

from dermspark import DermsparkError, storage

# What Keras' own cache calls each no-top ImageNet file, and its size, to tell users what to fetch.
IMAGENET_FILES = {
    "inception_resnet_v2": ("inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5", 219_055_592),
}
# A file Spark shipped to every executor (addFile), found in the executor's working folder.
SHIPPED = "spark-files:"


def keras_cache() -> str:
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def resolve_weights(weights: str | None, architecture: str) -> str | None:
    """'none' -> None (from scratch); 'imagenet' -> the file in this machine's Keras cache; a
    local path -> its absolute path; a URL -> itself. Missing is one clear error."""
    if weights in (None, "", "none"):
        return None
    if weights == "imagenet":
        name, size = IMAGENET_FILES[architecture]
        path = os.path.join(keras_cache(), name)
        if os.path.isfile(path):
            return path
        raise DermsparkError(
            f"ImageNet weights for {architecture} are not on this machine and are never downloaded "
            f"at run time: put {name} ({size:,} bytes) in {keras_cache()}/ (or $KERAS_HOME/models/), "
            "or pass --weights with its path or URL (s3://, hdfs://), or --weights none to train from scratch"
        )
    url = storage.to_url(weights)
    found = storage.local_path(url)
    if found is not None:
        if os.path.isfile(found):
            return found
        raise DermsparkError(f"weights file {weights} does not exist")
    if not storage.exists(url):
        raise DermsparkError(f"weights file {weights} does not exist (or cannot be read with these credentials)")
    return url


def ship_weights(spark, resolved: str | None) -> str | None:
    """On a cluster a file on the driver's disk is shipped to every executor; URLs and local
    mode need nothing."""
    if resolved is None or storage.local_path(storage.to_url(resolved)) is None:
        return resolved
    if spark.sparkContext.master.startswith("local"):
        return resolved
    spark.sparkContext.addFile(resolved)
    return SHIPPED + os.path.basename(resolved)


def local_weights(weights: str | None, architecture: str) -> str | None:
    """A local file Keras can load, from whatever the builder was given."""
    if weights and weights.startswith(SHIPPED):
        name = weights[len(SHIPPED) :]
        # Spark puts shipped files in each executor's working folder, where Horovod's ranks run.
        for folder in (os.getcwd(), os.environ.get("HOROVOD_SPARK_WORK_DIR"), _spark_files_root()):
            if folder and os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
        raise DermsparkError(f"the weights file {name} that Spark shipped is not in {os.getcwd()}")
    resolved = resolve_weights(weights, architecture)
    if resolved is None or storage.local_path(resolved) is not None:
        return resolved
    return _fetched(resolved)


def _spark_files_root() -> str | None:
    try:
        from pyspark import SparkFiles

        return SparkFiles.getRootDirectory()
    except Exception:  # noqa: BLE001  outside a Spark worker there is none
        return None


def _fetched(url: str) -> str:
    """The URL's file in this machine's cache, named by the URL and the file's size and date, so
    a replaced file is fetched again; fetched to a temporary name and renamed into place."""
    fs, path = storage.open_url(url)
    info = fs.info(path)
    version = f"{url}|{info.get('size')}|{info.get('ETag') or info.get('mtime') or info.get('LastModified')}"
    key = hashlib.sha256(version.encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), "dermspark-weights")
    target = os.path.join(folder, f"{key}-{os.path.basename(path)}")
    if not os.path.isfile(target):
        os.makedirs(folder, exist_ok=True)
        partial = f"{target}.{os.getpid()}.part"
        fs.get_file(path, partial)
        os.replace(partial, target)
    return target
