#!/usr/bin/env bash
# Installs what is missing into .venv (idempotent). Sourced by quickstart.sh and test.sh.
#   NODELOOM_EXTRAS  pip extras to install (default: all runtime extras)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
fi
VPY=.venv/bin/python
# The CPU build of torch 2.13.0 (an unpinned torch would pull a multi-GB CUDA build).
if ! "$VPY" -c "import torch" 2>/dev/null; then
    echo "setup: installing torch==2.13.0"
    "$VPY" -m pip install -q "torch==2.13.0"
fi
EXTRAS=${NODELOOM_EXTRAS:-all}
STAMP=".venv/.nodeloom-$EXTRAS-$(cksum pyproject.toml | cut -d' ' -f1)"
if [[ ! -f "$STAMP" ]]; then
    echo "setup: installing nodeloom[$EXTRAS]"
    "$VPY" -m pip install -q -e ".[$EXTRAS]"
    # spandrel (upscale models) declares torchvision, whose PyPI build breaks beside the CPU torch:
    # install it without dependencies; its other needs are in the `upscale` extra.
    case ",$EXTRAS," in *,all,*|*,upscale,*) "$VPY" -m pip install -q --no-deps "spandrel==0.4.2";; esac
    touch "$STAMP"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
