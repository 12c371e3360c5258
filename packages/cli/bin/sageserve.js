#!/usr/bin/env node
// Entry point of the `sageserve` command. Runs the compiled CLI (npm run build).
import { existsSync } from "node:fs";

const main = new URL("../dist/main.js", import.meta.url);
if (!existsSync(main)) {
  console.error("sageserve is not built yet: run `npm run build` (or `bash scripts/setup.sh`) first.");
  process.exit(2);
}
await import(main.href);
