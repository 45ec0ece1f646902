#!/usr/bin/env bash
# Quick start: install what is missing, start `nodeloom serve` on 127.0.0.1, queue the
# embedded default workflow (no model weights needed) over the ComfyUI HTTP API, wait for
# it, print where the output went, and stop the server.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODELOOM_EXTRAS=${NODELOOM_EXTRAS:-server,video,detail,samples} source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec .venv/bin/python -m nodeloom.cli.main demo "$@"
