#!/usr/bin/env bash
# Tools the test suite drives besides nats-server: Debian's Chromium (the dashboard is checked in a
# headless browser) and docker-compose (validates docker-compose.yml without a Docker engine).
set -euo pipefail
missing=()
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM_BIN:-}" ]; then missing+=(chromium); fi
if ! command -v docker-compose >/dev/null 2>&1; then missing+=(docker-compose); fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools present: chromium, docker-compose"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing test tools: ${missing[*]} — install them (or set CHROMIUM_BIN) and rerun" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing from apt: ${missing[*]}..."
$SUDO apt-get update -qq
for pkg in "${missing[@]}"; do
  # docker-compose recommends docker.io (an engine we do not want); Chromium's recommends bring fonts.
  if [ "$pkg" = docker-compose ]; then opts=(--no-install-recommends); else opts=(); fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${opts[@]}" "$pkg" >/dev/null
done
echo "installed: ${missing[*]}"
