#!/usr/bin/env bash
# The example: ImPartial segments nuclei from scribbles, inside CellProfiler, on the bundled data.
#
#   bash scripts/run_example.sh            (from anywhere; about 4-5 minutes on 2 CPU cores)
#
# 1. sets up .venv (CellProfiler 5 + ImPartial) with scripts/setup_env.sh cp5 (skipped when done);
# 2. runs pipelines/nuclei_mibi.cppipe headless through CellProfiler on examples/data/mibi_dsdna
#    (4 MIBI dsDNA images, the ImPartial paper's n100 scribbles): ImPartial trains with its
#    default settings (3-minute budget), then MeasureObjectSizeShape, MeasureObjectIntensity,
#    OverlayOutlines + SaveImages, ConvertObjectsToImage + SaveImages, ExportToSpreadsheet;
# 3. prints the nuclei per image (from the CSV CellProfiler wrote) and where the outputs are.
# Exits non-zero when CellProfiler did not produce the CSV rows and counts (CellProfiler itself
# often exits 0 after a failure), with the end of its log.
#
# Env: OUT (default out/example), CP_LINE=cp42 to use .venv-cp42 (CellProfiler 4.2.8.1) instead.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
LINE="${CP_LINE:-cp5}"
OUT="${OUT:-out/example}"
INPUT="examples/data/mibi_dsdna"
PIPELINE="pipelines/nuclei_mibi.cppipe"
case "$LINE" in
    cp5) VENV=.venv; EXTRA=(-e imageio_reader) ;;   # TIFF via imageio (else Bio-Formats wants to download jars)
    cp42) VENV=.venv-cp42; EXTRA=(); export JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}" ;;
    *) echo "CP_LINE must be cp5 or cp42" >&2; exit 2 ;;
esac

bash scripts/setup_env.sh "$LINE"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
LOG="$OUT/cellprofiler.log"
# Outputs of an earlier run must not pass for this run's
rm -f "$OUT"/Image.csv "$OUT"/Nuclei.csv "$OUT"/Experiment.csv "$OUT"/*_nuclei_overlay.png "$OUT"/*_nuclei_impartial.tiff

echo
echo "==> CellProfiler $("$VENV/bin/cellprofiler" --version 2>/dev/null | tail -n 1): $PIPELINE on $INPUT"
echo "    (ImPartial first trains for up to 3 minutes, or reuses the model an earlier run saved in
    $OUT; progress about every 10 s; full log: $LOG)"
START=$(date +%s)
set +e
PYTHONUNBUFFERED=1 "$VENV/bin/cellprofiler" -c -r -p "$PIPELINE" -i "$INPUT" -o "$OUT" --plugins-directory plugins "${EXTRA[@]}" \
    > "$LOG" 2>&1 &
CP_PID=$!
trap 'kill $CP_PID 2>/dev/null' INT TERM
# Show ImPartial's own progress lines while CellProfiler runs
tail -n +1 -f "$LOG" --pid=$CP_PID 2>/dev/null | grep --line-buffered -E "ImPartial|Error|error" | sed -u 's/^/    /' &
wait $CP_PID
RC=$?
sleep 0.5
set -e
echo "    CellProfiler exited with $RC after $(( $(date +%s) - START )) s"

"$VENV/bin/python" - "$OUT" "$LOG" "$INPUT" <<'EOF'
import csv, os, sys

out, log, data = sys.argv[1:4]

def fail(message):
    print("\nFAILED: " + message)
    print("---- end of the CellProfiler log (%s) ----" % log)
    with open(log, errors="replace") as fd:
        print("".join(fd.readlines()[-40:]))
    sys.exit(1)

image_csv, nuclei_csv = os.path.join(out, "Image.csv"), os.path.join(out, "Nuclei.csv")
if not os.path.isfile(image_csv):
    fail("CellProfiler wrote no %s" % image_csv)
rows = list(csv.DictReader(open(image_csv, newline="")))
expected = sorted(f for f in os.listdir(data) if f.startswith("image") and f.endswith(".tif") and "_" not in f)
if len(rows) != len(expected):
    fail("%s has %d image rows, expected %d (%s)" % (image_csv, len(rows), len(expected), ", ".join(expected)))
try:
    counts = {r["FileName_DNA"]: int(float(r["Count_Nuclei"])) for r in rows}
except (KeyError, ValueError) as error:
    fail("%s lacks the nuclei counts (%s)" % (image_csv, error))
objects = list(csv.DictReader(open(nuclei_csv, newline=""))) if os.path.isfile(nuclei_csv) else []
if len(objects) != sum(counts.values()) or not sum(counts.values()):
    fail("%s has %d nuclei rows but Image.csv counts %d" % (nuclei_csv, len(objects), sum(counts.values())))
truth = {}
try:
    import numpy, tifffile
    for name in counts:
        labels = tifffile.imread(os.path.join(data, name.replace(".tif", "_nuclei_labels.tif")))
        truth[name] = len(numpy.unique(labels[labels > 0]))
except Exception:
    pass
print("\nNuclei found by ImPartial in CellProfiler:")
for name, count in sorted(counts.items()):
    print("  %-12s %4d nuclei%s" % (name, count, "   (ground truth: %d)" % truth[name] if name in truth else ""))
print("  %-12s %4d nuclei" % ("total", sum(counts.values())))
overlays = sorted(f for f in os.listdir(out) if f.endswith("_nuclei_overlay.png"))
labels = sorted(f for f in os.listdir(out) if f.endswith("_nuclei_impartial.tiff"))
print("\nOutputs in %s:" % out)
print("  measurements (CSV):  Image.csv (one row per image), Nuclei.csv (one row per nucleus), Experiment.csv")
print("  overlays (PNG):      %s" % ", ".join(overlays))
print("  label images (TIFF): %s" % ", ".join(labels))
print("  model:               impartial_model.safetensors (reused by re-runs; see pipelines/README.md)")
print("  CellProfiler log:    cellprofiler.log")
if len(overlays) != len(rows):
    fail("expected %d overlay images, found %d" % (len(rows), len(overlays)))
EOF
