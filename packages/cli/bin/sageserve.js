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

// The simulator (`sim`, `compare`) makes millions of short-lived objects per simulated hour: a larger
// young generation cuts the garbage collector's share of a run by about a tenth (docs/benchmarks.md).
// V8 reads the size at start-up only, so those commands run in a child node that has it, with signals
// passed on and its exit status returned. SAGESERVE_NO_REEXEC=1 runs them in this process.
// They also get an old generation sized to the machine (three quarters of its memory; V8's own limit is
// ~4 GB whatever the machine has): a forecast-driven policy holds up to a day of batch jobs until their
// cheapest hours, and at `paper-scale` that is tens of millions of jobs.
const YOUNG_GEN = "--max-semi-space-size=128";
const command = process.argv[2];
const nodeFlags = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(/\s+/)];
const hasFlag = nodeFlags.some((a) => a.startsWith("--max-semi-space-size"));
if ((command === "sim" || command === "compare") && !hasFlag && !process.env.SAGESERVE_NO_REEXEC) {
  const { spawn } = await import("node:child_process");
  const { totalmem } = await import("node:os");
  const oldGenMb = Math.floor((totalmem() / 2 ** 20) * 0.75);
  const heapFlags = nodeFlags.some((a) => a.startsWith("--max-old-space-size"))
    ? [YOUNG_GEN]
    : [YOUNG_GEN, `--max-old-space-size=${Math.max(4096, oldGenMb)}`];
  const child = spawn(process.execPath, [...process.execArgv, ...heapFlags, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, SAGESERVE_NO_REEXEC: "1" },
  });
  const forward = (signal) => child.kill(signal);
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(s, forward);
  child.on("error", (e) => {
    console.error(`sageserve: cannot start ${process.execPath}: ${e.message}`);
    process.exit(2);
  });
  child.on("exit", (code, signal) => {
    if (signal) {
      for (const s of ["SIGINT", "SIGTERM", "SIGHUP"]) process.off(s, forward);
      process.kill(process.pid, signal);
    } else process.exit(code ?? 1);
  });
} else await import(main.href);
