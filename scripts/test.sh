#!/usr/bin/env bash
# The test suite, from nothing: set up both CellProfiler environments (and bioimage.io's validator
# in a venv of its own), then run pytest in each.
#
#   bash scripts/test.sh            both CellProfiler lines (5 in .venv, 4.2.8.1 in .venv-cp42)
#   bash scripts/test.sh cp5        CellProfiler 5 only (faster while developing)
#
# Every test runs under both interpreters: the library must work with CellProfiler 4.2's pins
# (Python 3.9, numpy 1.24, scikit-image 0.18) as well as with CellProfiler 5's.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET="${1:-all}"
bash scripts/setup_env.sh "$TARGET"
bash scripts/setup_bioimageio.sh   # bioimage.io's validator, for the exported model packages

status=0
run_suite() {  # $1 = cp5|cp42, $2 = venv
    echo
    echo "==> tests with $1 ($("$2/bin/cellprofiler" --version 2>/dev/null | tail -n 1))"
    IMPARTIAL_CP_LINE="$1" "$2/bin/python" -m pytest tests -q -p no:cacheprovider -ra || status=1
}
case "$TARGET" in
    cp5) run_suite cp5 .venv ;;
    cp42) run_suite cp42 .venv-cp42 ;;
    all) run_suite cp5 .venv; run_suite cp42 .venv-cp42 ;;
esac
exit $status
