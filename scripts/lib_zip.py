"""The project's code as a zip for executors' Python path: `lib_zip.py LIB BUILD` prints its path.

The zip is named by its content's hash and never rewritten. A submit therefore never replaces a
zip that a running job still imports from: in local mode Horovod's ranks import straight from
this file, some modules only when training ends, and a zip swapped under them fails them there
(a 50-epoch run died at its evaluation that way). Zips no submit has used for a week are removed.
"""

import hashlib
import os
import sys
import tempfile
import time
import zipfile

UNUSED_FOR = 7 * 86400  # seconds


def sources(lib: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(os.path.join(lib, "dermspark")):
        dirs[:] = sorted(name for name in dirs if name != "__pycache__")
        found += sorted(os.path.join(folder, name) for name in files if name.endswith(".py"))
    return found


def build_zip(lib: str, build: str) -> str:
    paths = sources(lib)
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            digest.update(os.path.relpath(path, lib).encode() + b"\0" + handle.read() + b"\0")
    target = os.path.join(build, f"dermspark-lib-{digest.hexdigest()[:16]}.zip")
    if not os.path.exists(target):
        handle, staging = tempfile.mkstemp(dir=build, suffix=".zip.tmp")
        os.close(handle)
        with zipfile.ZipFile(staging, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in paths:
                archive.write(path, os.path.relpath(path, lib))
        os.replace(staging, target)  # whole or not at all, for submits racing to make the same zip
    os.utime(target)  # in use: the week starts again
    for name in os.listdir(build):
        path = os.path.join(build, name)
        if name.startswith("dermspark-lib") and path != target and time.time() - os.path.getmtime(path) > UNUSED_FOR:
            os.remove(path)
    return target


if __name__ == "__main__":
    os.makedirs(sys.argv[2], exist_ok=True)
    print(build_zip(sys.argv[1], sys.argv[2]))
