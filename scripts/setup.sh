#!/usr/bin/env bash
# One-time (idempotent) setup on a fresh machine: nats-server, openssl, npm packages, build.
#   --with-test-tools   also Chromium (headless dashboard test) and docker-compose (compose file
#                       validation) from apt, for `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-nats.sh
# openssl makes the CA and certificates of NATS TLS (`sageserve nats-auth --tls`, `up --tls`, the TLS tests).
if ! command -v openssl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "installing openssl from apt..."
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq openssl >/dev/null
  else
    echo "openssl is missing: NATS TLS certificates cannot be made here (macOS: brew install openssl)" >&2
  fi
fi
if [ "${1:-}" = "--with-test-tools" ]; then bash scripts/install-test-tools.sh; fi
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
