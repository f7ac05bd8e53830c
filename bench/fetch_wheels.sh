#!/usr/bin/env bash
# Fetch, here, the wheels the sealed GPU machine lacks for bench/gpu_bench.sh.
#
#   bash bench/fetch_wheels.sh                # diffusers into .whl/ (6.4 MB)
#   bash bench/fetch_wheels.sh --with-pytest  # also pytest, pluggy, iniconfig
#
# The GPU machine (python 3.12, torch 2.11 CUDA, transformers 5.x, huggingface_hub,
# safetensors, numpy, pillow, regex, requests, filelock, pytest ...) has no diffusers and
# no network. diffusers is pure Python; its requirements are all there except
# importlib_metadata, which diffusers imports only on Python < 3.8 (the GPU has 3.12).
# pytest, pluggy, iniconfig, packaging and pygments are there: --with-pytest is for a
# machine without pytest (gpu_bench.sh also runs tests/test_gpu.py without pytest). Versions are the ones installed in this checkout's .venv, so the
# GPU runs the code the CPU tests ran. .whl/ is git-ignored; name it in the device run's
# `carry` (bench/gpu_bench.sh installs it with pip --no-index --no-deps --target).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

version() {  # version of an installed distribution in $PY's environment
    "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"
}

names=(diffusers)
if [ "${1:-}" = "--with-pytest" ]; then
    names+=(pytest pluggy iniconfig)
fi

mkdir -p .whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
for name in "${names[@]}"; do
    spec="$name==$(version "$name")"
    # one version of each: drop any other version fetched earlier
    norm="$(echo "$name" | tr '-' '_')"
    for old in .whl/"$norm"-*.whl; do
        [ -e "$old" ] || continue
        case "$old" in .whl/"$norm-$(version "$name")"-*) ;; *) rm -f "$old" ;; esac
    done
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp "${platforms[@]}" -d .whl "$spec"
done
ls -l .whl
du -sh .whl
