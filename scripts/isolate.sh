#!/usr/bin/env bash
# Runs a command as a machine of its own would: in a private mount namespace where each --hide
# folder is an empty tmpfs, except the --keep folders inside them, which stay as they are.
# scripts/cluster.sh --isolated starts each worker this way, so that executors cannot see the
# driver's files (its checkout, /tmp, HOME) and share only what real nodes share: object stores
# and the folders kept as a network mount.
#
#   scripts/isolate.sh [--hide DIR]... [--keep DIR]... -- COMMAND [ARGS]...
#
# Needs root (mount namespaces); says so and fails otherwise. Every mount is private to the
# namespace and goes away with its last process: nothing to tear down.
set -euo pipefail

hides=() keeps=()
while [ $# -gt 0 ]; do
    case "$1" in
        --hide) hides+=("$(realpath -m "$2")"); shift 2 ;;
        --keep) keeps+=("$(realpath -m "$2")"); shift 2 ;;
        --) shift; break ;;
        *) echo "isolate.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[ $# -gt 0 ] || { echo "isolate.sh: no command given" >&2; exit 2; }

if [ -z "${DERMSPARK_IN_NAMESPACE:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "isolate.sh: a private mount namespace needs root (unshare --mount)" >&2; exit 1; }
    args=()
    for dir in "${hides[@]}"; do args+=(--hide "$dir"); done
    for dir in "${keeps[@]}"; do args+=(--keep "$dir"); done
    # unshare execs in place (no --fork): the pid the caller records is the command's.
    DERMSPARK_IN_NAMESPACE=1 exec unshare --mount --propagation private -- "$0" "${args[@]}" -- "$@"
fi
unset DERMSPARK_IN_NAMESPACE

# Kept folders are bind-mounted to a stash first, then back at their own paths once the
# folders around them are hidden.
stash=/mnt
mount -t tmpfs dermspark-stash "$stash"
for index in "${!keeps[@]}"; do
    mkdir -p "$stash/$index" "${keeps[$index]}"
    mount --bind "${keeps[$index]}" "$stash/$index"
done
for dir in "${hides[@]}"; do
    mkdir -p "$dir"
    mount -t tmpfs -o mode=1777 dermspark-hidden "$dir"
done
for index in "${!keeps[@]}"; do
    mkdir -p "${keeps[$index]}"
    mount --bind "$stash/$index" "${keeps[$index]}"
done
# A working folder inside a hidden one would still reach the old files.
cd /
exec "$@"
