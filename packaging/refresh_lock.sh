#!/usr/bin/env bash
# Refresh the dependency lock (packaging/lock/) deliberately, then run the tests against it.
#
#   bash packaging/refresh_lock.sh             # the newest versions pyproject.toml's ranges allow
#   bash packaging/refresh_lock.sh --keep      # keep every pin that still fits (after an edit
#                                              # of pyproject.toml: only what it changed moves)
#   bash packaging/refresh_lock.sh --partial   # lock what can be reached now; keep the other
#                                              # files as they are (they must still agree)
#   EDITEDID_LOCK_TESTS="tests/test_cli.py"  ... # these tests (and tests/test_lock.py) instead
#                                              # of the whole default suite
#   EDITEDID_TORCH_FIND_LINKS=/opt/wheels ...  # a folder holding the official torch CPU wheel,
#                                              # used when download.pytorch.org is out of reach
#
# One file per platform and PyTorch variant: packaging/lock/{linux,windows}-{cpu,cu126,cu128}.txt,
# each `uv pip compile pyproject.toml --extra dev --generate-hashes` for CPython 3.11 on that
# platform (uv resolves for another platform; pip-tools cannot). linux-cpu (what CI tests) is
# resolved first; every other file is resolved with linux-cpu's pins as constraints, so all
# share the same versions except torch and what only one platform or CUDA needs.
#   linux:   x86_64-manylinux_2_34 (glibc 2.34+: PySide6 6.12's wheels; Ubuntu 22.04, Debian 12)
#   torch:   TORCH_VERSION (in this script), the variant's build from
#            https://download.pytorch.org/whl/<variant> (uv --torch-backend); windows-cpu takes
#            PyPI's Windows wheel, which is the CPU build.
# Why uv's requirements files: pip-compile resolves only for the machine it runs on (no Windows
# file from Linux); a uv.lock is one universal file that needs every PyTorch index at once and
# uv at install time. These files are plain pip input: installs use pip --require-hashes.
# Then packaging/install.sh installs the new lock into a scratch venv (build/lock-venv) and the
# tests run in it. Only when they pass do the new files replace packaging/lock/; otherwise
# they stay in build/lock-refresh/ for a look. Needs uv (the [dev] extra brings it) and PyPI.
# Exit status: 0 refreshed; 1 tests or install failed; 2 a variant could not be locked.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Raise deliberately: all six files must have it (torch 2.15 is planned to drop cu126).
TORCH_VERSION="2.13.0"
PYTHON_VERSION="3.11"  # packaging/lock_check.py: LOCK_PYTHON
LINUX_PLATFORM="x86_64-manylinux_2_34"
WINDOWS_PLATFORM="x86_64-pc-windows-msvc"
LOCK_DIR="packaging/lock"
STAGE="build/lock-refresh"
VENV="build/lock-venv"
PYTHON="${PYTHON:-python3}"

say() { printf '[refresh-lock] %s\n' "$*"; }
die() { printf '[refresh-lock] error: %s\n' "$*" >&2; exit "${2:-1}"; }

mode=upgrade
partial=0
for arg in "$@"; do
  case "$arg" in
    --keep) mode=keep ;;
    --partial) partial=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$arg' (--keep, --partial, --help)" ;;
  esac
done

UV="${UV:-}"
if [ -z "$UV" ]; then
  if [ -x .venv/bin/uv ]; then UV=.venv/bin/uv; else UV="$(command -v uv || true)"; fi
fi
[ -n "$UV" ] || die "uv not found: bash packaging/install.sh (the [dev] extra brings it), or pip install uv"
say "$("$UV" --version), torch $TORCH_VERSION, CPython $PYTHON_VERSION, mode: $mode"

reachable() {  # URL: answers within 15 s
  "$PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=15).close()
EOF
}

rm -rf "$STAGE"
mkdir -p "$STAGE"
left_out=()

lock() {  # NAME PLATFORM VARIANT: resolve $STAGE/NAME.txt
  local name="$1" platform="$2" variant="$3"
  local out="$STAGE/$name.txt" pin="$STAGE/torch-$name.in" how
  local index="https://download.pytorch.org/whl/$variant"
  local args=(pyproject.toml --extra dev --python-version "$PYTHON_VERSION"
    --python-platform "$platform" --generate-hashes --quiet
    --custom-compile-command "bash packaging/refresh_lock.sh" -o "$out" -c "$pin")
  [ "$name" = linux-cpu ] || args+=(-c "$STAGE/linux-cpu.in")
  if [ "$mode" = keep ] && [ -f "$LOCK_DIR/$name.txt" ]; then
    cp "$LOCK_DIR/$name.txt" "$out"  # uv keeps the pins of an existing output file
  else
    args+=(--upgrade)
  fi
  if [ "$name" = windows-cpu ]; then
    echo "torch==$TORCH_VERSION" > "$pin"
    how="torch from PyPI (its Windows wheel is the CPU build)"
  elif reachable "$index/torch/"; then
    echo "torch==$TORCH_VERSION" > "$pin"
    args+=(--torch-backend "$variant")
    how="torch from $index"
  elif [ "$name" = linux-cpu ] && [ -n "${EDITEDID_TORCH_FIND_LINKS:-}" ]; then
    echo "torch==$TORCH_VERSION+cpu" > "$pin"
    args+=(--find-links "$EDITEDID_TORCH_FIND_LINKS")
    how="torch: the file in $EDITEDID_TORCH_FIND_LINKS ($index was out of reach)"
  else
    say "LEFT OUT $name: $index is out of reach"
    left_out+=("$name")
    return 0
  fi
  say "$name: $how"
  "$UV" pip compile "${args[@]}"
  # Say what the file is for under uv's header (line 2: the command).
  sed -i "2a # $name: CPython $PYTHON_VERSION, $platform, $how" "$out"
  if [ "$name" = linux-cpu ]; then
    # Every pin but torch's constrains the other files.
    grep -E '^[A-Za-z0-9][^ ]*==' "$out" | sed 's/ .*//' | grep -v '^torch==' > "$STAGE/linux-cpu.in"
  fi
}

lock linux-cpu "$LINUX_PLATFORM" cpu
[ -f "$STAGE/linux-cpu.txt" ] || die "linux-cpu could not be locked: every other file follows it" 2
for variant in cu126 cu128; do lock "linux-$variant" "$LINUX_PLATFORM" "$variant"; done
for variant in cpu cu126 cu128; do lock "windows-$variant" "$WINDOWS_PLATFORM" "$variant"; done

say "resolved in ${SECONDS} s"
if [ "${#left_out[@]}" -gt 0 ]; then
  [ "$partial" = 1 ] || die "not locked: ${left_out[*]} (run where download.pytorch.org answers, or --partial to keep those files as they are)" 2
  for name in "${left_out[@]}"; do
    # Kept as it is: the tests below check it still agrees with the new files.
    if [ -f "$LOCK_DIR/$name.txt" ]; then cp "$LOCK_DIR/$name.txt" "$STAGE/$name.txt"; fi
  done
fi

# A fresh venv from the new lock, made by the installer users run.
if [ -e "$VENV" ] && [ ! -e "$VENV/.editedid-lock-venv" ]; then
  die "$VENV exists and was not made by this script: not deleting it"
fi
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
touch "$VENV/.editedid-lock-venv"
variant="${EDITEDID_TORCH:-cpu}"
say "installing $STAGE/linux-$variant.txt into $VENV"
EDITEDID_VENV="$VENV" EDITEDID_LOCK_DIR="$STAGE" EDITEDID_LOCK=on EDITEDID_TORCH="$variant" PYTHON="$PYTHON" \
  bash packaging/install.sh || die "installing the new lock failed; it is in $STAGE"

say "installed in ${SECONDS} s since the start"
tests=()
if [ -n "${EDITEDID_LOCK_TESTS:-}" ]; then
  read -r -a tests <<< "tests/test_lock.py $EDITEDID_LOCK_TESTS"
fi
say "testing: $VENV/bin/python -m pytest -q ${tests[*]:-(the default suite)}"
if ! EDITEDID_LOCK_DIR="$STAGE" QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 \
    "$VENV/bin/python" -m pytest -q ${tests[@]+"${tests[@]}"}; then
  die "the tests fail against the new lock: packaging/lock/ is unchanged; the new files are in $STAGE"
fi

mkdir -p "$LOCK_DIR"
for f in "$STAGE"/*-*.txt; do cp "$f" "$LOCK_DIR/"; done
say "packaging/lock/ refreshed and tested in ${SECONDS} s:"
git status --short -- "$LOCK_DIR" || true
if [ "${#left_out[@]}" -gt 0 ]; then
  say "NOT refreshed (index out of reach): ${left_out[*]}"
fi
