#!/usr/bin/env bash
# Install EditedID Desktop into ./.venv (run from anywhere; safe to run again).
#
#   bash packaging/install.sh            # picks the PyTorch build for this machine
#   EDITEDID_TORCH=cpu  bash packaging/install.sh   # force the CPU build
#   EDITEDID_TORCH=cu126 bash packaging/install.sh  # CUDA 12.6 build (older drivers)
#   PYTHON=python3.12 bash packaging/install.sh     # use another interpreter
#
# PyTorch goes in first, from the right index: installing the project first would let
# pip pick whatever torch build it finds (a multi-GB CUDA build on Linux).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"

say() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 \
  || die "'$PYTHON' not found. Install Python 3.11 or newer (python.org or your package manager), or set PYTHON=/path/to/python3."

py_version="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  die "EditedID Desktop needs Python 3.11 or newer, but '$PYTHON' is Python $py_version. Install a newer Python and run again, e.g. PYTHON=python3.11 bash packaging/install.sh"
fi
say "using $PYTHON (Python $py_version) in $(pwd)"

if [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  say ".venv already exists: reusing it"
else
  if [ -e .venv ]; then
    say ".venv is broken or uses an old Python: recreating it"
    rm -rf .venv
  fi
  say "creating virtual environment .venv"
  "$PYTHON" -m venv .venv
fi
VPY=.venv/bin/python

say "upgrading pip"
"$VPY" -m pip install --upgrade pip

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
  cpu)
    say "pip install torch==$TORCH_VERSION"
    "$VPY" -m pip install "torch==$TORCH_VERSION"
    ;;
  cu126|cu128)
    say "pip install torch --index-url https://download.pytorch.org/whl/$choice"
    "$VPY" -m pip install torch --index-url "https://download.pytorch.org/whl/$choice"
    ;;
  *)
    die "EDITEDID_TORCH must be cpu, cu126 or cu128 (or unset to choose automatically), not '$choice'."
    ;;
esac

say "pip install -e \".[dev]\" (EditedID Desktop and its development tools)"
"$VPY" -m pip install -e ".[dev]"

"$VPY" -c 'import torch; print("[install] torch", torch.__version__, "| CUDA available:", torch.cuda.is_available())'

# Qt's X11 plugin needs system libraries the PySide6 wheel does not bring (libxcb-cursor0,
# libxcb-icccm4, ...): ldd on the plugin finds the missing ones; print the apt/dnf command.
if [ "$(uname -s)" = "Linux" ]; then
  say "checking the system libraries Qt's X11 platform needs"
  if ! "$VPY" -m editedid_desktop.qt_platform | sed 's/^/[install] /'; then
    say "install the packages above before starting the app (the command needs sudo)"
  fi
fi
say "done. Start the app with: .venv/bin/editedid"
say "command line: .venv/bin/editedid-cli --help"
