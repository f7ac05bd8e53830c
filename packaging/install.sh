#!/usr/bin/env bash
# Install EditedID Desktop into ./.venv (run from anywhere; safe to run again).
#
#   bash packaging/install.sh            # picks the PyTorch build for this machine
#   EDITEDID_TORCH=cpu  bash packaging/install.sh   # force the CPU build
#   EDITEDID_TORCH=cu126 bash packaging/install.sh  # CUDA 12.6 build (older drivers)
#   PYTHON=python3.11 bash packaging/install.sh     # use another interpreter
#   EDITEDID_LOCK=off bash packaging/install.sh     # newest versions pyproject.toml allows
#   EDITEDID_LOCK=on  bash packaging/install.sh     # the lock or an error (CI, releases)
#
# On Linux with Python 3.11 every package comes from the lock, packaging/lock/linux-<variant>.txt:
# exact versions with sha256 hashes (`pip install --require-hashes`), the same on every day
# and machine, made by packaging/refresh_lock.sh. Packages the lock does not list are removed
# from the venv; a variant without a lock file is an error. Elsewhere (macOS, another Python)
# and with EDITEDID_LOCK=off it installs the newest versions the ranges in pyproject.toml
# allow (not reproducible); EDITEDID_LOCK=on makes that an error instead.
# PyTorch goes in first, from the right index: installing the project first would let
# pip pick whatever torch build it finds (a multi-GB CUDA build on Linux).
# EDITEDID_VENV=DIR installs into DIR instead of .venv, EDITEDID_LOCK_DIR=DIR reads the lock
# from DIR (refresh_lock.sh tests a new lock with both).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"  # EDITEDID_LOCK=off only; the lock pins its own torch
VENV="${EDITEDID_VENV:-.venv}"
LOCK="${EDITEDID_LOCK:-auto}"
LOCK_DIR="${EDITEDID_LOCK_DIR:-packaging/lock}"
LOCK_PYTHON="3.11"  # the Python the lock is made for (packaging/lock_check.py: LOCK_PYTHON)

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

case "$LOCK" in
  auto|on|off) ;;
  *) die "EDITEDID_LOCK must be on (the locked versions), off (the newest versions pyproject.toml allows) or unset (the lock where it applies), not '$LOCK'." ;;
esac

command -v "$PYTHON" >/dev/null 2>&1 \
  || die "'$PYTHON' not found. Install Python 3.11 or newer (python.org or your package manager), or set PYTHON=/path/to/python3."

py_version="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  die "EditedID Desktop needs Python 3.11 or newer, but '$PYTHON' is Python $py_version. Install a newer Python and run again, e.g. PYTHON=python3.11 bash packaging/install.sh"
fi
# The lock applies to Linux and Python $LOCK_PYTHON (its Windows files are build_windows.ps1's).
lock_python="import sys; sys.exit(0 if sys.version_info[:2] == (${LOCK_PYTHON/./, }) else 1)"
if [ "$LOCK" != off ]; then
  unlocked=""
  if [ "$(uname -s)" != "Linux" ]; then
    unlocked="the lock (packaging/lock/) has Linux and Windows files, none for $(uname -s)"
  elif ! "$PYTHON" -c "$lock_python"; then
    unlocked="the lock (packaging/lock/) is made for Python $LOCK_PYTHON, but '$PYTHON' is Python $py_version"
  fi
  if [ -z "$unlocked" ]; then
    LOCK=on
  elif [ "$LOCK" = on ]; then
    die "EDITEDID_LOCK=on, but $unlocked. Run with PYTHON=python$LOCK_PYTHON on Linux, or EDITEDID_LOCK=off."
  else
    say "$unlocked: installing the newest versions pyproject.toml allows instead (for the locked, tested set: PYTHON=python$LOCK_PYTHON on Linux)"
    LOCK=off
  fi
fi
# The Python the venv must have: the lock's, or any 3.11+ without it.
if [ "$LOCK" = on ]; then
  want_python="$lock_python"
else
  want_python='import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'
fi
say "using $PYTHON (Python $py_version) in $(pwd)"

choice="${EDITEDID_TORCH:-auto}"
if [ "$choice" = "auto" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    choice="cu128"
    say "NVIDIA GPU found (nvidia-smi works): installing the CUDA 12.8 build of PyTorch"
  else
    choice="cpu"
    say "no working nvidia-smi: installing the CPU build of PyTorch (EditedID runs, slowly)"
  fi
else
  say "EDITEDID_TORCH=$choice"
fi
case "$choice" in
  cpu|cu126|cu128) ;;
  *) die "EDITEDID_TORCH must be cpu, cu126 or cu128 (or unset to choose automatically), not '$choice'." ;;
esac
TORCH_INDEX="https://download.pytorch.org/whl/$choice"

if [ "$LOCK" = on ]; then
  lockfile="$LOCK_DIR/linux-$choice.txt"
  if [ ! -f "$lockfile" ]; then
    missing="no dependency lock for linux-$choice: $lockfile is missing (made by 'bash packaging/refresh_lock.sh' on a machine that reaches $TORCH_INDEX)"
    if [ "${EDITEDID_LOCK:-auto}" = on ]; then
      die "$missing. Meanwhile: EDITEDID_TORCH=cpu (locked), or EDITEDID_LOCK=off for the newest $choice build (not reproducible)."
    fi
    # A developer with a GPU still gets a working install: the newest versions the ranges
    # allow, said plainly (CI and releases set EDITEDID_LOCK=on and stop here instead).
    say "warning: $missing; installing the newest versions pyproject.toml allows instead (not reproducible; EDITEDID_TORCH=cpu gives the locked set)"
    LOCK=off
    want_python='import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'
  fi
fi

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$want_python" 2>/dev/null; then
  say "$VENV already exists: reusing it"
else
  if [ -e "$VENV" ]; then
    say "$VENV is broken or uses another Python: recreating it"
    rm -rf "$VENV"
  fi
  say "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

say "upgrading pip"
"$VPY" -m pip install --upgrade pip

# -I: not the repository's own packaging/ folder (a namespace package from the current
# directory), the installed library lock_check.py needs; a new venv has none yet.
if [ "$LOCK" = on ] && "$VPY" -I -c "import packaging.markers" 2>/dev/null; then
  # A reused venv: remove first what the lock moves to another version. Some distributions
  # share one folder (PySide6, PySide6-Essentials, -Addons, shiboken6): replaced in place,
  # the old one's uninstall deleted files the new one had just written (PySide6 without
  # its __init__.py after a lock moved 6.12.0 -> 6.11.3).
  mapfile -t stale < <("$VPY" packaging/lock_check.py stale "$lockfile")
  if [ "${#stale[@]}" -gt 0 ]; then
    say "removing what the lock moves to another version: ${stale[*]}"
    "$VPY" -m pip uninstall -y "${stale[@]}"
  fi
fi

if [ "$LOCK" = on ]; then
  # torch alone first, from the PyTorch index of the variant (its +cpu/+cuXYZ build is not
  # on PyPI); then the whole lock. Every file must match a hash of the lock.
  torch_pin="$(mktemp)"
  trap 'rm -f "$torch_pin"' EXIT
  awk '/^torch==/ {on = 1} on {print} on && !/\\$/ {exit}' "$lockfile" > "$torch_pin"
  grep -q '^torch==' "$torch_pin" || die "$lockfile pins no torch"
  say "pip install --require-hashes $(head -1 "$torch_pin" | cut -d' ' -f1) (from $TORCH_INDEX)"
  "$VPY" -m pip install --require-hashes --no-deps -r "$torch_pin" --extra-index-url "$TORCH_INDEX"
  if [ "$choice" = cpu ]; then
    extra=()  # everything else of the CPU lock is on PyPI
  else
    extra=(--extra-index-url "$TORCH_INDEX")  # CUDA libraries may come from the PyTorch index
  fi
  say "pip install --require-hashes -r $lockfile (every dependency, exactly as locked)"
  "$VPY" -m pip install --require-hashes -r "$lockfile" ${extra[@]+"${extra[@]}"}
  mapfile -t unlisted < <("$VPY" packaging/lock_check.py extras "$lockfile")
  if [ "${#unlisted[@]}" -gt 0 ]; then
    say "removing what the lock does not list: ${unlisted[*]}"
    "$VPY" -m pip uninstall -y "${unlisted[@]}"
  fi
  say "pip install --no-deps -e . (EditedID Desktop itself; its dependencies are the lock's)"
  "$VPY" -m pip install --no-deps --no-build-isolation -e .
  "$VPY" packaging/lock_check.py verify "$lockfile" | sed 's/^/[install] /'
else
  say "EDITEDID_LOCK=off: the newest versions pyproject.toml allows, not the lock"
  case "$choice" in
    cpu)
      say "pip install torch==$TORCH_VERSION"
      "$VPY" -m pip install "torch==$TORCH_VERSION"
      ;;
    cu126|cu128)
      say "pip install torch --index-url $TORCH_INDEX"
      "$VPY" -m pip install torch --index-url "$TORCH_INDEX"
      ;;
  esac
  # Eager upgrades: an existing venv (made from the lock, say) moves to the newest versions
  # too; torch stays the build installed just above.
  torch_pin="$(mktemp)"
  trap 'rm -f "$torch_pin"' EXIT
  "$VPY" -c 'import importlib.metadata as m; print("torch==" + m.version("torch"))' > "$torch_pin"
  say "pip install --upgrade -e \".[dev]\" (EditedID Desktop and its development tools, newest versions)"
  "$VPY" -m pip install --upgrade --upgrade-strategy eager -e ".[dev]" -c "$torch_pin"
fi

"$VPY" -c 'import torch; print("[install] torch", torch.__version__, "| CUDA available:", torch.cuda.is_available())'

# Qt's X11 plugin needs system libraries the PySide6 wheel does not bring (libxcb-cursor0,
# libxcb-icccm4, ...): ldd on the plugin finds the missing ones; print the apt/dnf command.
if [ "$(uname -s)" = "Linux" ]; then
  say "checking the system libraries Qt's X11 platform needs"
  if ! "$VPY" -m editedid_desktop.qt_platform | sed 's/^/[install] /'; then
    say "install the packages above before starting the app (the command needs sudo)"
  fi
fi
say "done. Start the app with: $VENV/bin/editedid"
say "command line: $VENV/bin/editedid-cli --help"
