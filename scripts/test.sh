#!/usr/bin/env bash
# Installs what is missing (venv, all extras, test tools, Debian's chromium for the browser
# tests) and runs the whole default test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODELOOM_EXTRAS=all,test source "$ROOT/scripts/setup.sh"
cd "$ROOT"
if [[ ! -x /usr/bin/chromium ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "test: installing Debian's chromium for the browser tests"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
            || echo "test: chromium could not be installed; browser tests will be skipped"
    else
        echo "test: /usr/bin/chromium missing and not root; browser tests will be skipped"
    fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
# pytest exits 5 when it collects no test: that is a failure here too (set -e).
.venv/bin/python -m pytest -m "not slow and not gpu" -p no:cacheprovider "$@"
