import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@sageserve/runtime";

const bin = new URL("../../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/** A `sageserve node-agent` process running its own engine-emulator process: a "GPU host" that can be SIGKILLed. */
export interface NodeProcess {
  nodeId: string;
  region: string;
  instanceId: string;
  /** Base URL of its engine (the emulator's /metrics is there). */
  engineUrl: string;
  process: ChildProcess;
  /** SIGKILL the node agent (its engine, started with --parent-pid, exits within a second). */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit (idempotent). */
  stop(): Promise<void>;
}

export interface NodeProcessOptions {
  natsUrl: string;
  nodeId: string;
  region: string;
  model: string;
  /** Engine speed relative to the measured H100 (the emulator's --speedup). */
  speedup: number;
  /** The engine's --max-num-seqs: requests beyond it wait in its queue, before their first token. */
  maxNumSeqs?: number;
  heartbeatMs?: number;
  loadReportMs?: number;
  /** More flags for the emulator (e.g. `--scheduling-policy priority`). */
  engineArgs?: string[];
  /** More flags for `sageserve node-agent` (e.g. `--engine-priority on`). */
  agentArgs?: string[];
}

const exited = (p: ChildProcess): Promise<void> =>
  p.exitCode !== null || p.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => p.once("exit", () => r()));

export async function spawnNodeAgent(o: NodeProcessOptions): Promise<NodeProcess> {
  const dir = mkdtempSync(join(tmpdir(), `sage-node-${o.nodeId}-`));
  const port = await freePort();
  const config = {
    nodeId: o.nodeId,
    region: o.region,
    gpuType: "h100",
    engine: {
      url: `http://127.0.0.1:${port}`,
      kind: "vllm",
      model: o.model,
      command: emulatorCommand(o.speedup, [
        ...(o.maxNumSeqs ? ["--max-num-seqs", String(o.maxNumSeqs)] : []),
        ...(o.engineArgs ?? []),
      ]),
      kvCapacityTokens: 200_000,
    },
    heartbeatMs: o.heartbeatMs ?? 500,
    loadReportMs: o.loadReportMs ?? 250,
  };
  const file = join(dir, "node.json");
  writeFileSync(file, JSON.stringify(config));
  const child = spawn(process.execPath, [bin, "node-agent", "--config", file, ...(o.agentArgs ?? [])], {
    env: { ...process.env, NATS_URL: o.natsUrl, SAGE_LOG_LEVEL: "error" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const done = exited(child).then(() => rmSync(dir, { recursive: true, force: true }));
  return {
    nodeId: o.nodeId,
    region: o.region,
    instanceId: `${o.nodeId}-i0`,
    engineUrl: config.engine.url,
    process: child,
    async kill() {
      child.kill("SIGKILL");
      await done;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await done;
        clearTimeout(force);
      }
      await done;
    },
  };
}

/** Poll `cond` every `everyMs` until it holds or `timeoutMs` passes; returns whether it held. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 30_000, everyMs = 50) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Read an SSE response to its end: the parsed `data:` payloads (and "[DONE]"), `onEvent` called as each arrives. */
export async function readSse(res: Response, onEvent?: (e: unknown) => void): Promise<unknown[]> {
  const events: unknown[] = [];
  const decoder = new TextDecoder();
  let buf = "";
  for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += decoder.decode(part, { stream: true });
    for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith("data: ")) continue;
      const data = ev.slice(6);
      const e = data === "[DONE]" ? data : (JSON.parse(data) as unknown);
      events.push(e);
      onEvent?.(e);
    }
  }
  return events;
}

/** The engine command a node agent or the local VM backend runs: `sageserve emulator`, `speedup` × the hardware. */
export function emulatorCommand(speedup: number, extra: string[] = []): string[] {
  return [
    process.execPath,
    bin,
    "emulator",
    "--model",
    "{model}",
    "--port",
    "{port}",
    "--speedup",
    String(speedup),
    "--parent-pid",
    "{parentPid}",
    ...extra,
  ];
}
