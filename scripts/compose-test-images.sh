#!/usr/bin/env bash
# Test-only images for test/compose-up.test.ts, made where no image registry is reachable:
#   sageserve-test-base:bookworm   Debian bookworm (minbase + wget), debootstrap'ed here and `docker import`ed;
#                                  made once, kept (remove it to remake)
#   sageserve:local                the image docker-compose.yml runs for every SageServe service, built from
#                                  this host's installed and built workspace (remade on every run)
#   sageserve-test-nats:local      this host's nats-server (compose's nats:2.10-alpine needs Docker Hub)
# The user-facing ./Dockerfile (npm ci inside the image) is what users build; it is not used here because a
# container cannot reach the npm registry on these machines. Needs: a Docker engine, debootstrap (for the
# base image), node and nats-server on this host, and `npm run build` done.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=sageserve-test-base:bookworm
log() { echo "compose-test-images: $*" >&2; }

if ! docker info >/dev/null 2>&1; then
  log "no Docker engine answers (docker info): run \`bash scripts/setup.sh --with-test-tools\` (starts dockerd as root)"
  exit 1
fi
for f in packages/cli/dist/index.js packages/cli/bin/sageserve.js node_modules; do
  [ -e "$f" ] || { log "$f missing: run \`bash scripts/setup.sh\` (npm ci + build) first"; exit 1; }
done
for bin in node nats-server; do
  command -v "$bin" >/dev/null 2>&1 || { log "$bin not on PATH"; exit 1; }
done

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || {
    log "debootstrap missing (apt-get install debootstrap, or bash scripts/install-test-tools.sh)"
    exit 1
  }
  root=$(mktemp -d /tmp/sage-rootfs.XXXXXX)
  log "making $BASE with debootstrap (bookworm, minbase + wget) in $root ..."
  debootstrap --variant=minbase --include=wget,ca-certificates bookworm "$root" \
    "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$root.log" 2>&1 || {
    tail -20 "$root.log" >&2
    exit 1
  }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$BASE" >/dev/null
  rm -rf "$root" "$root.log"
fi

stage=$(mktemp -d /tmp/sage-images.XXXXXX)
trap 'rm -rf "$stage"' EXIT
cp "$(readlink -f "$(command -v node)")" "$stage/node"
cp "$(readlink -f "$(command -v nats-server)")" "$stage/nats-server"
cat >"$stage/app.Dockerfile" <<DOCKERFILE
FROM $BASE
COPY node /usr/local/bin/node
WORKDIR /app
COPY package.json package-lock.json ./
COPY node_modules ./node_modules
COPY packages ./packages
ENV NODE_ENV=production
ENTRYPOINT ["node", "packages/cli/bin/sageserve.js"]
CMD ["--help"]
DOCKERFILE
cat >"$stage/nats.Dockerfile" <<DOCKERFILE
FROM $BASE
COPY nats-server /usr/local/bin/nats-server
ENTRYPOINT ["nats-server"]
DOCKERFILE
log "building sageserve:local from the host's workspace ..."
tar -c -C "$stage" app.Dockerfile node -C "$PWD" package.json package-lock.json node_modules packages |
  docker build -q -t sageserve:local -f app.Dockerfile - >/dev/null
log "building sageserve-test-nats:local ($(nats-server --version)) ..."
tar -c -C "$stage" nats.Dockerfile nats-server | docker build -q -t sageserve-test-nats:local -f nats.Dockerfile - >/dev/null
log "images ready: $BASE, sageserve:local, sageserve-test-nats:local"
