#!/usr/bin/env bash
# Set up the project on a fresh machine: a .venv with everything the app needs.
#   bash scripts/setup.sh          app dependencies
#   bash scripts/setup.sh --dev    plus test tools (pytest, ruff, Playwright, Hugging Face datasets), Ray and
#                                  Debian's Chromium
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

dev=0
[[ "${1:-}" == "--dev" ]] && dev=1
python=${PYTHON:-python3}

if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
requirements=requirements.txt
((dev)) && requirements=requirements-dev.txt
stamp=".venv/.installed-$(cat requirements.txt "$requirements" | sha1sum | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  .venv/bin/pip install --upgrade --quiet pip
  .venv/bin/pip install --quiet -r "$requirements"
  touch "$stamp"
fi

if ((dev)); then
  # Ray is optional for users (requirements-ray.txt); the tests embed on a local two-node Ray cluster.
  ray_stamp=".venv/.installed-ray-$(sha1sum < requirements-ray.txt | cut -c1-12)"
  if [[ ! -f "$ray_stamp" ]]; then
    .venv/bin/pip install --quiet -r requirements-ray.txt
    touch "$ray_stamp"
  fi
fi

if ((dev)) && [[ ! -x /usr/bin/chromium ]]; then
  # Browser tests drive Debian's Chromium (Playwright's own browser download needs the internet).
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi
echo "setup done: $(.venv/bin/python -c 'import torch, streamlit; print("torch", torch.__version__, "streamlit", streamlit.__version__)')"
