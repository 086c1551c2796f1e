#!/usr/bin/env bash
# Set up the development/CI environments for ImPartial, from nothing, on Debian 12 (root or sudo).
#
#   scripts/setup_env.sh [cp5|cp42|all]      (default: cp5)
#
#   cp5   .venv       CellProfiler 5.0.0.dev784 (PyPI cellprofiler-nightly), Python 3.11 from Debian
#                     (--system-site-packages so Debian's wxPython 4.2 gives a GUI), torch 2.13.0 CPU
#   cp42  .venv-cp42  CellProfiler 4.2.8.1 (headless only: no wxPython), pyenv's Python 3.9.18,
#                     python-javabridge + OpenJDK 17, torch 2.8.0 (PyPI CUDA build; runs on CPU)
#
# Idempotent: each venv holds a stamp keyed by the hash of this script, setup.py and the pin
# files; a matching stamp skips the venv. FORCE=1 reinstalls into the existing venv,
# CLEAN=1 deletes the venv first. Pins: scripts/constraints-cp5.txt, scripts/constraints-cp42.txt,
# scripts/requirements-cp42.txt.
set -euo pipefail

TARGET="${1:-cp5}"
case "$TARGET" in cp5|cp42|all) ;; *) echo "usage: $0 [cp5|cp42|all]" >&2; exit 2 ;; esac

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$REPO/scripts"
cd "$REPO"

CP5_VERSION="5.0.0.dev784"
CP42_VERSION="4.2.8.1"
TORCH_CP5="2.13.0"     # local CPU wheel in /opt/wheels (pip find-links), Python 3.11 only
TORCH_CP42="2.8.0"     # PyPI: CUDA build (~3.9 GB with nvidia-* wheels), works on CPU
PIP_VERSION="24.3.1"
JAVA_HOME_CP42="/usr/lib/jvm/java-17-openjdk-amd64"
PY39_VERSION="3.9.18"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { printf '\n==> [setup_env %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '\nERROR [setup_env]: %s\n' "$*" >&2; exit 1; }

# pip, minus the harmless "Location 'file:///opt/pypi...' is ignored" noise of this machine's pip.conf.
# (pipefail keeps pip's exit status.)
pipq() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

stamp_key() {
    # Everything that decides what goes into the venvs.
    cat "$SCRIPTS/setup_env.sh" "$REPO/setup.py" "$SCRIPTS/constraints-cp5.txt" \
        "$SCRIPTS/constraints-cp42.txt" "$SCRIPTS/requirements-cp42.txt" | sha256sum | cut -c1-16
}
STAMP_NAME=".impartial-setup-stamp"

# ---------------------------------------------------------------- apt
APT_PACKAGES=(
    python3.11-venv python3-wxgtk4.0                # cp5 venv + GUI (Debian wxPython 4.2.0)
    xvfb xauth xdotool imagemagick                  # headless GUI checks and screenshots
    openjdk-17-jdk-headless                         # CP 4.2: python-javabridge build + JVM
    build-essential python3-dev pkg-config          # source builds (javabridge, mysqlclient)
    default-libmysqlclient-dev                      # mysqlclient: hard dependency of CP 5, pinned by CP 4.2
)

apt_step() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "apt: all ${#APT_PACKAGES[@]} packages already installed"
        return
    fi
    local SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "need root or sudo to apt-get install: ${missing[*]}"
        SUDO="sudo"
    fi
    log "apt: installing ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    log "apt: done"
}

venv_is_current() {  # $1 = venv dir
    [ -z "${FORCE:-}" ] && [ -f "$1/$STAMP_NAME" ] && [ "$(cat "$1/$STAMP_NAME")" = "$(stamp_key)" ] \
        && [ -x "$1/bin/python" ]
}

# ---------------------------------------------------------------- CellProfiler 5
setup_cp5() {
    local V="$REPO/.venv" C="$SCRIPTS/constraints-cp5.txt" t0=$SECONDS
    if venv_is_current "$V"; then log "cp5: $V is up to date (stamp $(stamp_key)), skipping"; verify_cp5; return; fi
    [ -n "${CLEAN:-}" ] && { log "cp5: CLEAN=1, removing $V"; rm -rf "$V"; }
    [ -x /usr/bin/python3.11 ] || die "/usr/bin/python3.11 missing (Debian python3.11)"
    if [ -x "$V/bin/python" ] && ! grep -q "include-system-site-packages = true" "$V/pyvenv.cfg"; then
        log "cp5: $V exists without --system-site-packages, recreating"; rm -rf "$V"
    fi
    if [ ! -x "$V/bin/python" ]; then
        log "cp5: creating $V (Debian /usr/bin/python3.11, --system-site-packages for wxPython)"
        /usr/bin/python3.11 -m venv --system-site-packages "$V"
    fi
    local PIP=("$V/bin/python" -m pip)
    log "cp5: pip $PIP_VERSION"
    pipq "${PIP[@]}" install -q "pip==$PIP_VERSION"
    # torch first, from the local CPU wheel; every later call is constrained to it (no CUDA torch).
    log "cp5: torch==$TORCH_CP5 (local CPU wheel)"
    pipq "${PIP[@]}" install -q -c "$C" "torch==$TORCH_CP5"
    # numpy/Pillow/six/pyparsing/PyYAML/cryptography are pinned to versions other than Debian's
    # (numpy 1.24.2, Pillow 9.4.0, ...) so pip installs them into the venv, where they shadow the
    # system copies; wxPython is the only package that must come from /usr/lib/python3/dist-packages.
    log "cp5: cellprofiler-nightly==$CP5_VERSION, appose, project (-e .[test,bench])"
    pipq "${PIP[@]}" install -q -c "$C" \
        "cellprofiler-nightly==$CP5_VERSION" appose \
        numpy pillow six pyparsing pyyaml cryptography \
        -e ".[test,bench]"
    verify_cp5
    stamp_key > "$V/$STAMP_NAME"
    log "cp5: done in $((SECONDS - t0)) s"
}

verify_cp5() {
    local V="$REPO/.venv"
    log "cp5: verifying"
    "$V/bin/python" - <<'EOF'
import os, re, sys, importlib.metadata as md
import numpy, torch, wx, cellprofiler_core, cellprofiler, impartial_core  # noqa: F401
prefix = os.path.realpath(sys.prefix)
assert os.path.realpath(numpy.__file__).startswith(prefix), "Debian numpy shadows the venv's: %s" % numpy.__file__
assert numpy.__version__.startswith("1."), numpy.__version__
assert torch.version.cuda is None, "a CUDA torch got in: %s" % torch.__version__
# Every distribution that the installed tree needs must resolve inside the venv, except wxPython.
from packaging.requirements import Requirement
from packaging.markers import default_environment
roots = ["cellprofiler-nightly", "appose", "impartial-cellprofiler", "torch"]
seen, stack, outside = set(), [(r, ("test", "bench")) for r in roots], []
while stack:
    name, extras = stack.pop()
    key = re.sub(r"[-_.]+", "-", name).lower()
    if key in seen:
        continue
    seen.add(key)
    try:
        d = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    loc = os.path.realpath(str(d.locate_file("")))
    if not loc.startswith(prefix) and key not in ("wxpython", "impartial-cellprofiler"):
        outside.append("%s==%s (%s)" % (d.metadata["Name"], d.version, loc))
    for rs in d.requires or []:
        r = Requirement(rs)
        env = dict(default_environment())
        if r.marker is None or any(r.marker.evaluate(dict(env, extra=e)) for e in ("",) + tuple(extras)):
            stack.append((r.name, tuple(r.extras)))
assert not outside, "system site-packages shadow venv dependencies: " + ", ".join(outside)
print("cp5 OK: numpy %s, torch %s (cpu), wx %s, %d dists checked" % (numpy.__version__, torch.__version__, wx.version(), len(seen)))
EOF
    echo "cellprofiler --version: $("$V/bin/cellprofiler" --version 2>/dev/null | tail -1)"
}

# ---------------------------------------------------------------- CellProfiler 4.2
find_py39() {
    local c root
    for c in \
        "${PYENV_ROOT:+$PYENV_ROOT/versions/$PY39_VERSION/bin/python}" \
        "$(command -v pyenv >/dev/null 2>&1 && root="$(pyenv root 2>/dev/null)" && echo "$root/versions/$PY39_VERSION/bin/python")" \
        "$HOME/.pyenv/versions/$PY39_VERSION/bin/python" \
        "/root/.pyenv/versions/$PY39_VERSION/bin/python"; do
        if [ -n "$c" ] && [ -x "$c" ] && "$c" -c "import sys, venv; assert sys.version_info[:2] == (3, 9)" 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}

setup_cp42() {
    local V="$REPO/.venv-cp42" C="$SCRIPTS/constraints-cp42.txt" t0=$SECONDS PY39
    if venv_is_current "$V"; then log "cp42: $V is up to date (stamp $(stamp_key)), skipping"; verify_cp42; return; fi
    [ -n "${CLEAN:-}" ] && { log "cp42: CLEAN=1, removing $V"; rm -rf "$V"; }
    PY39="$(find_py39)" || die "Python $PY39_VERSION not found (looked in \$PYENV_ROOT, \$(pyenv root), ~/.pyenv).
CellProfiler 4.2 needs Python 3.8/3.9 (it pins scipy 1.9.0 / scikit-image 0.18.3: no 3.11 wheels).
This machine kind ships pyenv with $PY39_VERSION; elsewhere: pyenv install $PY39_VERSION."
    [ -d "$JAVA_HOME_CP42" ] || die "$JAVA_HOME_CP42 missing (apt openjdk-17-jdk-headless)"
    export JAVA_HOME="$JAVA_HOME_CP42"
    if [ ! -x "$V/bin/python" ]; then
        log "cp42: creating $V from $PY39"
        "$PY39" -m venv "$V"
    fi
    local PIP=("$V/bin/python" -m pip)
    log "cp42: pip/setuptools<81/wheel, numpy==1.24.4 (javabridge builds against it)"
    pipq "${PIP[@]}" install -q -c "$C" "pip==$PIP_VERSION" "setuptools<81" wheel "numpy==1.24.4"
    log "cp42: python-javabridge==4.0.5 (--no-build-isolation, JAVA_HOME=$JAVA_HOME)"
    pipq "${PIP[@]}" install -q -c "$C" --no-build-isolation "python-javabridge==4.0.5"
    log "cp42: cellprofiler==$CP42_VERSION cellprofiler-core==$CP42_VERSION (--no-deps)"
    pipq "${PIP[@]}" install -q --no-deps "cellprofiler==$CP42_VERSION" "cellprofiler-core==$CP42_VERSION"
    log "cp42: CellProfiler 4.2 requirements minus wxPython (scripts/requirements-cp42.txt)"
    pipq "${PIP[@]}" install -q -c "$C" -r "$SCRIPTS/requirements-cp42.txt"
    local t1=$SECONDS
    log "cp42: torch==$TORCH_CP42 (PyPI CUDA build, ~3.9 GB download; CPU use only)"
    pipq "${PIP[@]}" install -q -c "$C" "torch==$TORCH_CP42"
    log "cp42: torch step took $((SECONDS - t1)) s"
    log "cp42: project (-e .[test]), constrained to CP 4.2's numpy/scipy/scikit-image"
    pipq "${PIP[@]}" install -q -c "$C" -e ".[test]"
    verify_cp42
    stamp_key > "$V/$STAMP_NAME"
    log "cp42: done in $((SECONDS - t0)) s"
}

verify_cp42() {
    local V="$REPO/.venv-cp42"
    log "cp42: verifying"
    "$V/bin/python" - <<'EOF'
import numpy, scipy, skimage, torch, javabridge, cellprofiler_core, cellprofiler, impartial_core  # noqa: F401
from cellprofiler_core.utilities.java import start_java, stop_java  # noqa: F401
assert numpy.__version__ == "1.24.4", numpy.__version__
assert scipy.__version__ == "1.9.0", scipy.__version__
assert skimage.__version__ == "0.18.3", skimage.__version__
print("cp42 OK: numpy %s, scipy %s, skimage %s, torch %s" % (numpy.__version__, scipy.__version__, skimage.__version__, torch.__version__))
EOF
    echo "cellprofiler --version: $("$V/bin/cellprofiler" --version 2>/dev/null | tail -1)"
}

# ---------------------------------------------------------------- main
T_ALL=$SECONDS
t=$SECONDS; apt_step; T_APT=$((SECONDS - t))
T_CP5=-; T_CP42=-
if [ "$TARGET" = cp5 ] || [ "$TARGET" = all ]; then t=$SECONDS; setup_cp5; T_CP5=$((SECONDS - t)); fi
if [ "$TARGET" = cp42 ] || [ "$TARGET" = all ]; then t=$SECONDS; setup_cp42; T_CP42=$((SECONDS - t)); fi
log "timings: apt ${T_APT}s, cp5 ${T_CP5}s, cp42 ${T_CP42}s, total $((SECONDS - T_ALL))s"
