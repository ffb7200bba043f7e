#!/usr/bin/env bash
# Install everything (first time only), make sure PostgreSQL and Redis answer, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test bash scripts/install.sh
bash scripts/services.sh
exec .venv/bin/python -m pytest "$@"
