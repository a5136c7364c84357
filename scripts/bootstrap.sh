#!/usr/bin/env bash
# Creates or refreshes .venv with the pinned stack; a second run with nothing changed takes seconds.
# Run once on the machine that builds dermspark (it needs a C++ compiler); jobs only check it.
# --with-browser also installs Debian's Chromium, which the test suite's browser test drives.
# Horovod ships only as source and compiles against the installed TensorFlow, so its wheel is
# cached outside the repository under a key naming the TensorFlow version it was built for.
set -euo pipefail

with_browser=0
[ "${1:-}" = --with-browser ] && with_browser=1

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
cache="${DERMSPARK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dermspark}"
horovod_version="0.28.1"

say() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

find_python() {
    local candidate
    for candidate in "${DERMSPARK_PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

python_bin="$(find_python)" || die "Python 3.11 is required (TensorFlow 2.15 and Horovod 0.28.1 are pinned to it) and none was found: install python3.11 with its venv module, or set DERMSPARK_PYTHON to its path."
"$python_bin" -c 'import venv, ensurepip' 2>/dev/null || die "$python_bin has no venv/ensurepip module: install the python3.11-venv package."

command -v java >/dev/null 2>&1 || die "Java 17 is required by Spark 3.5 and 'java' is not on PATH: install OpenJDK 17 (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME and PATH."
java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
[ "$java_major" = "17" ] || die "Java 17 is required by Spark 3.5; 'java -version' reports major version '${java_major:-unknown}'. Install OpenJDK 17 and put it first on PATH."

# The browser test drives Debian's chromium: Playwright's own browser download would need a
# network at test time. Jobs do not need it: only the test suite asks (--with-browser), and where
# it cannot be installed this only warns.
chromium="${DERMSPARK_CHROMIUM:-/usr/bin/chromium}"
if [ "$with_browser" = 1 ] && [ ! -x "$chromium" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian's chromium for the browser test"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q chromium >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } ||
            say "warning: could not install chromium; the browser test will fail until $chromium exists"
    else
        say "warning: no Chromium at $chromium (the browser test needs it): apt-get install chromium, or set DERMSPARK_CHROMIUM"
    fi
fi

# shellcheck source=scripts/env_stamp.sh
. "$root/scripts/env_stamp.sh"
stamp_key="$(env_stamp "$root")"
if [ -f "$venv/.bootstrap-stamp" ] && [ "$(cat "$venv/.bootstrap-stamp")" = "$stamp_key" ]; then
    say "environment up to date ($venv)"
    exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv with $python_bin"
    "$python_bin" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# pip configurations that name missing find-links folders print a warning per package; keep
# everything else pip says, and its exit status (pipefail).
quiet_pip() { "${pip[@]}" "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
export TF_CPP_MIN_LOG_LEVEL=3

say "installing the pinned stack (first run: a few minutes)"
quiet_pip install -c "$root/constraints.txt" setuptools wheel
quiet_pip install -c "$root/constraints.txt" -e "$root[dev]"

tf_version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("tensorflow-cpu"))')"
wheel_dir="$cache/wheels/horovod-$horovod_version-tf$tf_version-cp311-$(uname -m)"
if ! ls "$wheel_dir"/horovod-*.whl >/dev/null 2>&1; then
    command -v c++ >/dev/null 2>&1 || die "a C++ compiler is required to build Horovod $horovod_version from source: install g++."
    if ! command -v cmake >/dev/null 2>&1; then
        quiet_pip install -c "$root/constraints.txt" cmake
    fi
    say "building Horovod $horovod_version against TensorFlow $tf_version (about 3 minutes, once)"
    build_dir="$(mktemp -d "${TMPDIR:-/tmp}/horovod-build.XXXXXX")"
    trap 'rm -rf "$build_dir"' EXIT
    PATH="$venv/bin:$PATH" HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
        HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 MAKEFLAGS="-j$(nproc)" \
        "${pip[@]}" wheel --no-deps --no-build-isolation "horovod==$horovod_version" -w "$build_dir" \
        >"$build_dir/build.log" 2>&1 || { tail -30 "$build_dir/build.log" >&2; die "Horovod build failed (log above)"; }
    mkdir -p "$(dirname "$wheel_dir")"
    # Move into place in one step so an interrupted build never leaves a half cache entry.
    staging="$wheel_dir.tmp.$$"
    mkdir -p "$staging" && cp "$build_dir"/horovod-*.whl "$staging"/ && mv -T "$staging" "$wheel_dir"
fi
quiet_pip install --no-deps --force-reinstall "$wheel_dir"/horovod-*.whl
check="$("$venv/bin/horovodrun" --check-build 2>/dev/null)"
grep -q '\[X\] TensorFlow' <<<"$check" || die "Horovod was built without TensorFlow support; delete $wheel_dir and rerun."
grep -q '\[X\] Gloo' <<<"$check" || die "Horovod was built without Gloo; delete $wheel_dir and rerun."

echo "$stamp_key" >"$venv/.bootstrap-stamp"
say "environment ready ($venv)"
