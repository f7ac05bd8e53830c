#!/usr/bin/env bash
# Packaging check (not in the default test run; tests/test_packaging.py runs it when
# `-m slow` is given): build the Linux bundle and its .deb here with the CPU build of
# torch, run its --self-test, and print the bundle size and the start-up times.
#
#   bash packaging/check_linux_bundle.sh            # ~10-20 min on 2 cores
#   EDITEDID_SKIP_BUILD=1 bash packaging/check_linux_bundle.sh   # time an existing bundle
#   EDITEDID_DROP_CACHES=1 ...   # truly cold run (needs root: drops the page cache)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DIST="${EDITEDID_DIST:-$ROOT/dist}"
APP="$DIST/EditedID"

CUDA="$("$PYTHON" -c 'import torch; print(torch.version.cuda or "")')"
if [[ -n "$CUDA" ]]; then
    echo "check_linux_bundle: this venv has CUDA torch ($CUDA); the check builds the CPU variant." >&2
    echo "Install it first: $PYTHON -m pip install torch --index-url https://download.pytorch.org/whl/cpu" >&2
    exit 2
fi

if [[ "${EDITEDID_SKIP_BUILD:-0}" != 1 ]]; then
    # build_linux.sh ends with the first run of --self-test (right after the build).
    start=$(date +%s.%N)
    EDITEDID_TORCH=cpu EDITEDID_APPIMAGE=0 bash packaging/build_linux.sh
    echo "== build + first self-test: $(printf '%.0f' "$(echo "$(date +%s.%N) - $start" | bc)") s"
fi
[[ -x "$APP/EditedID" ]] || { echo "no bundle at $APP" >&2; exit 1; }

# The .deb of this bundle (build_linux.sh made it; with EDITEDID_SKIP_BUILD=1 it is made
# here when missing or older than the bundle). tests/test_packaging.py installs it.
VERSION="$("$PYTHON" -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')"
DEB="$DIST/EditedID-${VERSION}-linux-amd64-cpu.deb"
if [[ ! -f "$DEB" || "$DEB" -ot "$APP/EditedID" ]]; then
    timed_deb_start=$(date +%s)
    "$PYTHON" packaging/build_deb.py "$APP" --variant cpu --out "$DIST"
    echo "== .deb built in $(( $(date +%s) - timed_deb_start )) s"
fi
echo "== deb: $(du -sm "$DEB" | cut -f1) MB $DEB"

if [[ "${EDITEDID_DROP_CACHES:-0}" == 1 ]]; then
    sync && echo 3 > /proc/sys/vm/drop_caches && echo "== page cache dropped"
fi

timed() {  # label, command...: run, print wall seconds, keep its status
    local label="$1"; shift
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    "$@" || rc=$?
    t1=$(date +%s.%N)
    printf '== %s: %.1f s (exit %d)\n' "$label" "$(echo "$t1 - $t0" | bc)" "$rc" >&2
    return $rc
}

export QT_QPA_PLATFORM=offscreen
timed "self-test, cold start (first run of this check)" "$APP/EditedID" --self-test
timed "self-test, warm start" "$APP/EditedID" --self-test >/dev/null
timed "--cli --help (start-up only)" "$APP/EditedID" --cli --help >/dev/null

# The GUI starts (offscreen) and is still running after 20 s without a traceback.
GUI_LOG="$(mktemp)"
rc=0
EDITEDID_MODELS_DIR="$(mktemp -d)" timeout 20 "$APP/EditedID" >"$GUI_LOG" 2>&1 || rc=$?
if [[ $rc -ne 124 ]] || grep -q "Traceback" "$GUI_LOG"; then
    echo "== GUI start: FAILED (exit $rc)"; cat "$GUI_LOG"; exit 1
fi
echo "== GUI start (offscreen): still running after 20 s, no traceback"
rm -f "$GUI_LOG"

SIZE_MB=$(du -sm "$APP" | cut -f1)
FILES=$(find "$APP" -type f | wc -l)
echo "== bundle size: ${SIZE_MB} MB in ${FILES} files ($APP)"
ls -1 "$DIST"/EditedID-*-linux-*.tar.gz 2>/dev/null | while read -r f; do
    echo "== archive: $(du -sm "$f" | cut -f1) MB $(basename "$f")"
done
echo "== largest parts:"
# sed reads to the end: `head` would close the pipe early and, under pipefail, sort's
# SIGPIPE (141) failed the check once the listing outgrew the pipe buffer.
du -sm "$APP"/_internal/* 2>/dev/null | sort -rn | sed -n 1,8p
echo "check_linux_bundle: OK"
