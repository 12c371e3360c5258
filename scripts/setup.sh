#!/usr/bin/env bash
# One-time (idempotent) setup on a fresh machine: nats-server, npm packages, build.
#   --with-test-tools   also Chromium (headless dashboard test) and docker-compose (compose file
#                       validation) from apt, for `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-nats.sh
if [ "${1:-}" = "--with-test-tools" ]; then bash scripts/install-test-tools.sh; fi
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
