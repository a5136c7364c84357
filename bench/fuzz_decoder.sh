#!/usr/bin/env bash
# The decoder fuzz test (tests/test_fuzz_decoder.py) run long: EXAMPLES examples per property
# (default 20000) instead of CI's 300, with Hypothesis' statistics: how many examples passed,
# how long each took. A failure prints the smallest input that fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
examples="${1:-20000}"
DERMSPARK_FUZZ_EXAMPLES="$examples" exec "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider \
    --hypothesis-show-statistics "$root/tests/test_fuzz_decoder.py"
