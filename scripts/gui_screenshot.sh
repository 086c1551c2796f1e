#!/usr/bin/env bash
# Start the CellProfiler 5 GUI under Xvfb, wait for its main window, take screenshots, quit.
#
#   scripts/gui_screenshot.sh OUT.png [gui_launcher/cellprofiler args...]
#   e.g. scripts/gui_screenshot.sh /tmp/shot.png --plugins-directory plugins -p pipelines/x.cppipe
#
# Writes OUT.png (main window maximised to the screen) and OUT-module5.png (after clicking the
# 5th module in the pipeline list, i.e. the first module after the four input modules).
# Env: CP_GUI_SETTLE (seconds to wait after the window shows, default 5).
# Xvfb on this machine kind drops a few percent of new X connections: every xdotool/import call
# is retried, and gui_launcher.py restarts CellProfiler if its own connection failed.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:?usage: $0 OUT.png [cellprofiler args]}"; shift
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"

if [ -z "${_CP_IN_XVFB:-}" ]; then
    export _CP_IN_XVFB=1
    exec xvfb-run -a -s '-screen 0 1600x1000x24' "$0" "$OUT" "$@"
fi

retry() { local i; for i in 1 2 3 4 5 6; do "$@" 2>/dev/null && return 0; sleep 0.5; done; echo "failed: $*" >&2; return 1; }
LOG="${OUT%.png}.log"
"$REPO/.venv/bin/python" "$REPO/scripts/gui_launcher.py" "$@" > "$LOG" 2>&1 &
PID=$!
W=""
for _ in $(seq 120); do
    W=$(xdotool search --onlyvisible --name "^CellProfiler " 2>/dev/null | head -1 || true)
    [ -n "$W" ] && break
    kill -0 $PID 2>/dev/null || { echo "CellProfiler exited; see $LOG" >&2; exit 1; }
    sleep 1
done
[ -n "$W" ] || { echo "no CellProfiler window after 120 s; see $LOG" >&2; kill $PID; exit 1; }
echo "window: $(retry xdotool getwindowname "$W")"
sleep "${CP_GUI_SETTLE:-5}"
retry xdotool windowmove "$W" 0 0
retry xdotool windowsize "$W" 1600 1000
sleep 3
retry import -window root "$OUT"
retry xdotool mousemove 176 110 click 1   # 5th entry of the pipeline list
sleep 3
retry import -window root "${OUT%.png}-module5.png"
kill $PID; wait $PID 2>/dev/null || true
echo "screenshots: $OUT ${OUT%.png}-module5.png (log: $LOG)"
