#!/usr/bin/env bash
# Tools the test suite drives besides nats-server: Debian's Chromium (the dashboard is checked in a
# headless browser), docker-compose (validates docker-compose.yml), and a Docker engine with debootstrap
# (test/compose-up.test.ts brings the compose file up for real, on images made locally: no registry needed).
# As root, starts dockerd when no Docker engine answers (log: /tmp/sage-dockerd.log).
set -euo pipefail
missing=()
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM_BIN:-}" ]; then missing+=(chromium); fi
if ! command -v docker-compose >/dev/null 2>&1; then missing+=(docker-compose); fi
if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then missing+=(docker.io); fi
if ! command -v debootstrap >/dev/null 2>&1; then missing+=(debootstrap); fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools present: chromium, docker-compose, a Docker engine, debootstrap"
elif ! command -v apt-get >/dev/null 2>&1; then
  echo "missing test tools: ${missing[*]} — install them (or set CHROMIUM_BIN) and rerun" >&2
  exit 1
else
  echo "installing from apt: ${missing[*]}..."
  $SUDO apt-get update -qq
  for pkg in "${missing[@]}"; do
    # Chromium's recommends bring fonts; docker-compose's and docker.io's are not needed.
    if [ "$pkg" = chromium ]; then opts=(); else opts=(--no-install-recommends); fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${opts[@]}" "$pkg" >/dev/null
  done
  echo "installed: ${missing[*]}"
fi
# A Docker engine that answers: start Debian's dockerd when none does (CI machines run no init system).
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "no Docker engine answers: start one (e.g. sudo dockerd) for test/compose-up.test.ts" >&2
  else
    echo "starting dockerd (log /tmp/sage-dockerd.log)..."
    nohup dockerd >/tmp/sage-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
      if docker info >/dev/null 2>&1; then break; fi
      sleep 0.5
    done
    docker info >/dev/null 2>&1 || {
      tail -20 /tmp/sage-dockerd.log >&2
      echo "dockerd did not answer in 30 s" >&2
      exit 1
    }
    echo "dockerd up"
  fi
fi
