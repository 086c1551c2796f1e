#!/usr/bin/env bash
# Set up .venv-bioimageio: bioimage.io's own validator (bioimageio.core, its `bioimageio` command)
# beside torch, to check the model packages that `impartial export` writes.
#
#   scripts/setup_bioimageio.sh
#
# A venv of its own: bioimageio.core pins pydantic, xarray, numpy ranges of its own that need not
# agree with CellProfiler's. Python 3.11 from Debian, torch from the local CPU wheel (the same
# version as .venv, so the TorchScript weights are run by the torch that wrote them).
# Idempotent: the venv holds a stamp keyed by the hash of this script; a matching stamp skips the
# install. FORCE=1 reinstalls into the existing venv, CLEAN=1 deletes the venv first.
# tests/test_export.py runs `.venv-bioimageio/bin/bioimageio test` and skips when it is missing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
V="$REPO/.venv-bioimageio"
PYTHON="${PYTHON:-/usr/bin/python3.11}"
BIOIMAGEIO_CORE_VERSION="0.11.0"
BIOIMAGEIO_SPEC_VERSION="0.5.12.0"   # the version bioimageio.core 0.11.0 pins
# The newest pydantic pip picks (2.14.4) calls serializers with another signature, and
# bioimageio.spec 0.5.12.0 then fails every package ("'index_key' is expected to be an integer or
# a string"); 2.12.5 works.
PYDANTIC_VERSION="2.12.5"
TORCH_VERSION="2.13.0"     # local CPU wheel in /opt/wheels (pip find-links), Python 3.11
PIP_VERSION="24.3.1"
STAMP_NAME=".impartial-setup-stamp"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { printf '\n==> [setup_bioimageio %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '\nERROR [setup_bioimageio]: %s\n' "$*" >&2; exit 1; }
# pip, minus the harmless "Location 'file:///opt/pypi...' is ignored" noise of this machine's pip.conf.
pipq() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
stamp_key() { sha256sum "$REPO/scripts/setup_bioimageio.sh" | cut -c1-16; }

verify() {
    "$V/bin/python" - <<'PY'
import pydantic, torch, bioimageio.core, bioimageio.spec
assert torch.version.cuda is None, "a CUDA torch got in: %s" % torch.__version__
print("bioimageio OK: bioimageio.core %s, bioimageio.spec %s, pydantic %s, torch %s (cpu)"
      % (bioimageio.core.__version__, bioimageio.spec.__version__, pydantic.VERSION, torch.__version__))
PY
    [ -x "$V/bin/bioimageio" ] || die "$V/bin/bioimageio is missing"
}

if [ -z "${FORCE:-}${CLEAN:-}" ] && [ -f "$V/$STAMP_NAME" ] && [ "$(cat "$V/$STAMP_NAME")" = "$(stamp_key)" ]; then
    log "$V is up to date (stamp $(stamp_key)), skipping"
    verify
    exit 0
fi

[ -x "$PYTHON" ] || die "$PYTHON not found (Debian: apt-get install python3.11-venv)"
if [ -n "${CLEAN:-}" ] && [ -d "$V" ]; then log "CLEAN=1: removing $V"; rm -rf "$V"; fi
if [ ! -x "$V/bin/python" ]; then
    log "creating $V with $PYTHON"
    "$PYTHON" -m venv "$V"
fi
rm -f "$V/$STAMP_NAME"
PIP=("$V/bin/python" -m pip)
pipq "${PIP[@]}" install -q "pip==$PIP_VERSION"
log "torch==$TORCH_VERSION (local CPU wheel)"
pipq "${PIP[@]}" install -q "torch==$TORCH_VERSION"
log "bioimageio.core==$BIOIMAGEIO_CORE_VERSION, bioimageio.spec==$BIOIMAGEIO_SPEC_VERSION, pydantic==$PYDANTIC_VERSION"
# torch stays the CPU wheel: naming it again keeps the resolver from replacing it.
pipq "${PIP[@]}" install -q "torch==$TORCH_VERSION" "bioimageio.core==$BIOIMAGEIO_CORE_VERSION" \
    "bioimageio.spec==$BIOIMAGEIO_SPEC_VERSION" "pydantic==$PYDANTIC_VERSION"
verify
stamp_key > "$V/$STAMP_NAME"
log "done"
