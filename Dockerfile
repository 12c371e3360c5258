# One image for every SageServe service (docker-compose.yml runs `sageserve actor <service>` in each).
FROM node:20-bookworm-slim
WORKDIR /app
# Workspace manifests first, so `npm ci` is cached until a dependency changes.
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages/ ./packages/
RUN npm ci --no-audit --no-fund && npm run build && npm prune --omit=dev --no-audit --no-fund
ENV NODE_ENV=production
ENTRYPOINT ["node", "packages/cli/bin/sageserve.js"]
CMD ["--help"]
