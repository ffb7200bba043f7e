#!/usr/bin/env bash
# Install (first time only) and run modelyard on the embedded local model: no key, no server needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/modelyard prompt "${@:-Write a haiku about trains}"
