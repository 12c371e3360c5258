#!/usr/bin/env node
// Entry point of the `sageserve` command. Runs the compiled CLI (npm run build).
import { existsSync } from "node:fs";

const main = new URL("../dist/main.js", import.meta.url);
if (!existsSync(main)) {
  console.error("sageserve is not built yet: run `npm run build` (or `bash scripts/setup.sh`) first.");
  process.exit(2);
}

// Started by npm (`npx sageserve …`, `npm run …`), this process runs under `npm → sh -c → node`. A
// SIGTERM to npm kills the shell and npm exits, leaving this process (and the engines and nats-server it
// started) behind, still holding their ports. So: when the process that started this one is gone, stop
// as on SIGTERM. (A SIGINT to npm stops at the shell, which waits for this process: send it to the
// process group, `kill -INT -<pgid>`, as a terminal's Ctrl-C does.)
if (process.env.npm_command) {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    process.kill(process.pid, "SIGTERM");
  }, 250);
  watch.unref();
}

await import(main.href);
