#!/usr/bin/env bash
# Install everything (first time only), make sure PostgreSQL and Redis answer, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=test bash scripts/install.sh
# The browser tests drive Debian's Chromium (never a browser download of Playwright's own).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
bash scripts/services.sh
exec .venv/bin/python -m pytest "$@"
