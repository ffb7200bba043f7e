#!/usr/bin/env bash
# Install (first time only) and serve the gateway + workbench on the embedded local model: no key, no server needed.
# Open http://127.0.0.1:4000 (workbench) or point any OpenAI SDK at http://127.0.0.1:4000/v1. Extra args go to `serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/modelyard serve "$@"
