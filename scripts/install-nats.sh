#!/usr/bin/env bash
# Installs nats-server where it is missing. Debian/Ubuntu: from apt (2.9.x, with JetStream).
# Elsewhere it prints the alternatives; the tests can also use NATS_URL or a Docker engine.
set -euo pipefail
if [ -n "${NATS_SERVER_BIN:-}" ] && "$NATS_SERVER_BIN" --version >/dev/null 2>&1; then exit 0; fi
if command -v nats-server >/dev/null 2>&1; then
  echo "nats-server present: $(nats-server --version)"
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "installing nats-server from apt..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nats-server >/dev/null
  # The Debian package enables a system service; SageServe starts its own servers, so keep that one off.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now nats-server >/dev/null 2>&1 || true; fi
  echo "nats-server installed: $(nats-server --version)"
  exit 0
fi
cat >&2 <<'MSG'
nats-server is not installed and this is not a Debian/Ubuntu machine. Pick one:
  macOS:   brew install nats-server
  Docker:  docker run -d -p 4222:4222 nats:2.10 -js   then  export NATS_URL=nats://127.0.0.1:4222
  Binary:  https://github.com/nats-io/nats-server/releases  (put it on PATH or set NATS_SERVER_BIN)
MSG
if [ -n "${NATS_URL:-}" ]; then
  echo "NATS_URL is set ($NATS_URL): continuing without a local nats-server." >&2
  exit 0
fi
exit 1
