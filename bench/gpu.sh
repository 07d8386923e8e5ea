#!/usr/bin/env bash
# On a machine with an accelerator, from the source tree, no install (JAX may be preinstalled, newer than
# the pin, with no network): the numerical report, then a bfloat16 train-step benchmark with its MFU.
#   bash bench/gpu.sh [--preset gpt2] [--batch 8] [--steps 20]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python -c 'import jax; print("devices:", jax.devices())'
python -m minigpt.cli verify
python bench/gpu.py "$@"
