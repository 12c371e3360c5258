#!/usr/bin/env bash
# One-time (idempotent) setup on a fresh machine: nats-server, npm packages, build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-nats.sh
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
