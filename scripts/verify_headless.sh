#!/usr/bin/env bash
# Check that each CellProfiler venv loads a throwaway plugin and runs a pipeline headless.
#
#   scripts/verify_headless.sh [cp5|cp42|all]     (default: all venvs that exist)
#
# Builds a plugin (SmokeTestModule) + PNG and TIFF inputs + a .cppipe in a temp dir with
# scripts/make_test_pipeline_example.py, runs `cellprofiler -c -r`, and checks the CSV written by
# ExportToSpreadsheet (CellProfiler often exits 0 when it did nothing, so the exit code proves little).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${1:-all}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fail=0

check_csv() {  # $1 csv, $2 expected rows
    python3 - "$1" "$2" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == int(sys.argv[2]), "expected %s image rows, got %d" % (sys.argv[2], len(rows))
vals = [float(r["SmokeTest_Mean_DNA"]) for r in rows]
assert all(0.3 < v < 0.7 for v in vals), vals
print("  CSV OK: %d rows, SmokeTest_Mean_DNA=%s" % (len(rows), vals))
EOF
}

run_one() {  # $1 = cp5|cp42
    local name=$1 venv cpflags=()
    case $name in
        cp5) venv="$REPO/.venv"; cpflags=(-e imageio_reader) ;;  # TIFF: else Bio-Formats tries to download jars
        cp42) venv="$REPO/.venv-cp42"; export JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64 ;;
    esac
    [ -x "$venv/bin/cellprofiler" ] || { echo "$name: $venv missing (scripts/setup_env.sh $name)"; fail=1; return; }
    local d="$TMP/$name"
    mkdir -p "$d/tif"
    "$venv/bin/python" "$REPO/scripts/make_test_pipeline_example.py" --write-plugin "$d/plugins" \
        --write-images "$d/png" --plugins-directory "$d/plugins" --module SmokeTestModule \
        -o "$d/smoke.cppipe" > "$d/make.log" 2>&1 || { cat "$d/make.log"; fail=1; return; }
    "$venv/bin/python" -c "
import numpy as np, tifffile
for i in range(3): tifffile.imwrite('$d/tif/t%d.tif' % i, (np.random.default_rng(i).random((48, 48)) * 65535).astype('uint16'))"
    local kind n
    for kind in png tif; do
        n=$(ls "$d/$kind" | wc -l)
        echo "$name/$kind: $venv/bin/cellprofiler -c -r -p smoke.cppipe -i $kind -o out --plugins-directory plugins ${cpflags[*]}"
        "$venv/bin/cellprofiler" -c -r -p "$d/smoke.cppipe" -i "$d/$kind" -o "$d/out-$kind" \
            --plugins-directory "$d/plugins" "${cpflags[@]}" > "$d/run-$kind.log" 2>&1 || true
        if [ -f "$d/out-$kind/MyExpt_Image.csv" ] && check_csv "$d/out-$kind/MyExpt_Image.csv" "$n"; then :; else
            echo "  FAILED ($name/$kind); log tail:"; tail -20 "$d/run-$kind.log"; fail=1
        fi
    done
}

case "$TARGET" in
    cp5|cp42) run_one "$TARGET" ;;
    all) for t in cp5 cp42; do
             if [ -x "$REPO/.venv$([ $t = cp42 ] && echo -cp42)/bin/python" ]; then run_one $t; else echo "$t: no venv, skipped"; fi
         done ;;
    *) echo "usage: $0 [cp5|cp42|all]" >&2; exit 2 ;;
esac
[ $fail -eq 0 ] && echo "verify_headless: OK" || { echo "verify_headless: FAILED"; exit 1; }
