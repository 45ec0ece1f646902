#!/usr/bin/env bash
# Installs what is missing (venv, all extras, test tools, the Debian packages the tests use)
# and runs the whole default test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NODELOOM_EXTRAS=all,test source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# Debian packages the tests use: chromium (browser tests), a Chinese font (storyboard captions),
# EGL with Mesa's software renderer (GLSLShader).
NEED=()
[[ -x /usr/bin/chromium ]] || NEED+=(chromium)
[[ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]] || NEED+=(fonts-wqy-microhei)
for lib in libEGL.so.1 libEGL_mesa.so.0 libGL.so.1 dri/swrast_dri.so; do
    compgen -G "/usr/lib/*/$lib" >/dev/null || { NEED+=(libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri); break; }
done
if (( ${#NEED[@]} )); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "test: installing Debian's ${NEED[*]}"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${NEED[@]}" >/dev/null) \
            || echo "test: ${NEED[*]} could not be installed; the tests that need them will be skipped"
    else
        echo "test: ${NEED[*]} missing and not root; the tests that need them will be skipped"
    fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
# pytest exits 5 when it collects no test: that is a failure here too (set -e).
.venv/bin/python -m pytest -m "not slow and not gpu" -p no:cacheprovider "$@"
