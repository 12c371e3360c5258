import { type ChildProcess, spawn } from "node:child_process";
import { builtinPerformanceModel, type Completion, Instance, type InstanceRequest } from "@sageserve/engine";
import type { Tier } from "@sageserve/protocol";
import { freePort } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { emulatorCommand, until } from "./support/procs.js";

/**
 * The same small workload through the engine emulator (a real `sageserve emulator` process on the wall
 * clock, at a speed-up, called over HTTP as a client would) and through the simulator's engine on
 * virtual time: the same per-request first-token order and TTFTs that agree within a stated tolerance.
 * The workload queues (8 sequences, a 20k-token KV cache, mixed tiers under priority scheduling), so
 * chunked prefill, priority order and KV limits are all exercised.
 */
const MODEL = "llama3.1-8b";
const GPU = "h100";
const SPEEDUP = 2;
const KV_TOKENS = 20_000;
const MAX_NUM_SEQS = 8;
/**
 * Tolerance, in simulated ms: 10 % of the simulated TTFT plus 60 ms of wall time (× the speed-up) for
 * HTTP, the event loops of two processes and timer lateness on a busy 2-core machine.
 */
const tolerance = (simTtftMs: number) => 0.1 * simTtftMs + 60 * SPEEDUP;

interface Planned {
  id: string;
  atMs: number;
  promptTokens: number;
  maxTokens: number;
  tier: Tier;
}

function workload(n: number, seed: number): Planned[] {
  let s = seed >>> 0;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const tiers: Tier[] = ["iw-fast", "iw-normal", "niw"];
  const out: Planned[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += -Math.log(1 - rnd()) * 40; // Poisson arrivals, 40 ms apart on average (wall time)
    out.push({
      id: `r${i}`,
      atMs: t,
      promptTokens: 200 + Math.floor(rnd() * 2_800),
      maxTokens: 50 + Math.floor(rnd() * 250),
      tier: tiers[i % 3]!,
    });
  }
  return out;
}

const PRIORITY: Record<Tier, number> = { "iw-fast": 0, "iw-normal": 1, niw: 2 };

describe("simulator and engine emulator agree on one engine under load", () => {
  let proc: ChildProcess;
  let url: string;

  beforeAll(async () => {
    const port = await freePort();
    const cmd = emulatorCommand(SPEEDUP, [
      "--gpu",
      GPU,
      "--kv-tokens",
      String(KV_TOKENS),
      "--max-num-seqs",
      String(MAX_NUM_SEQS),
      "--scheduling-policy",
      "priority",
      "--load-ms",
      "0",
    ]).map((a) =>
      a.replace("{model}", MODEL).replace("{port}", String(port)).replace("{parentPid}", String(process.pid)),
    );
    proc = spawn(cmd[0]!, cmd.slice(1), { stdio: ["ignore", "pipe", "inherit"] });
    url = `http://127.0.0.1:${port}`;
    const up = await until(async () => {
      try {
        return (await fetch(`${url}/health`)).ok;
      } catch {
        return false;
      }
    }, 20_000);
    expect(up).toBe(true);
  }, 30_000);

  afterAll(() => {
    proc?.kill("SIGTERM");
  });

  it("gives the same first-token order and TTFTs within the tolerance", async () => {
    const plan = workload(36, 7);
    // --- the emulator, over HTTP, on the wall clock
    const t0 = performance.now() + 50;
    const measured = await Promise.all(
      plan.map(async (p) => {
        await new Promise((r) => setTimeout(r, Math.max(0, t0 + p.atMs - performance.now())));
        const sentMs = performance.now() - t0;
        const res = await fetch(`${url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: MODEL,
            prompt: "x".repeat(4 * p.promptTokens), // the emulator counts ⌈chars / 4⌉ tokens
            max_tokens: p.maxTokens,
            stream: true,
            priority: PRIORITY[p.tier],
          }),
        });
        expect(res.status).toBe(200);
        let firstMs = Number.NaN;
        let chunks = 0;
        const decoder = new TextDecoder();
        for await (const part of res.body as unknown as AsyncIterable<Uint8Array>) {
          if (Number.isNaN(firstMs)) firstMs = performance.now() - t0;
          chunks += decoder.decode(part).split("data: {").length - 1;
        }
        return { id: p.id, sentMs, firstMs, chunks };
      }),
    );
    for (const m of measured) expect(m.chunks).toBe(plan.find((p) => p.id === m.id)!.maxTokens);

    // --- the simulator's engine, on virtual time, with the arrivals the emulator saw (× the speed-up)
    const perf = builtinPerformanceModel();
    const inst = new Instance({
      kvCapacityTokens: KV_TOKENS,
      timing: perf.timingFor(MODEL, GPU),
      nowMs: 0,
      maxNumSeqs: MAX_NUM_SEQS,
      scheduling: "priority",
    });
    const reqs: InstanceRequest[] = plan
      .map((p) => ({
        id: p.id,
        seq: 0,
        tier: p.tier,
        arrivalMs: measured.find((m) => m.id === p.id)!.sentMs * SPEEDUP,
        inputTokens: p.promptTokens,
        outputTokens: p.maxTokens,
      }))
      .sort((a, b) => a.arrivalMs - b.arrivalMs);
    const done: Completion[] = [];
    let next = 0;
    for (;;) {
      const ev = inst.nextEventMs();
      const arr = next < reqs.length ? reqs[next]!.arrivalMs : Number.POSITIVE_INFINITY;
      if (!Number.isFinite(ev) && !Number.isFinite(arr)) break;
      if (arr <= ev) inst.submit(reqs[next++]!, arr);
      else inst.step(ev, done);
    }
    expect(done).toHaveLength(plan.length);

    const rows = reqs.map((r) => {
      const m = measured.find((x) => x.id === r.id)!;
      const simTtft = r.firstTokenMs! - r.arrivalMs;
      const emuTtft = (m.firstMs - m.sentMs) * SPEEDUP;
      return {
        id: r.id,
        tier: r.tier,
        simFirst: r.firstTokenMs!,
        emuFirst: m.firstMs * SPEEDUP,
        simTtft,
        emuTtft,
      };
    });
    const off = rows.filter((r) => Math.abs(r.emuTtft - r.simTtft) > tolerance(r.simTtft));
    if (off.length)
      console.table(
        rows.map((r) => ({ ...r, simTtft: Math.round(r.simTtft), emuTtft: Math.round(r.emuTtft) })),
      );
    expect(off).toEqual([]);
    // Priority scheduling shows in both: batch work waits longer than interactive work.
    const mean = (tier: Tier, k: "simTtft" | "emuTtft") => {
      const xs = rows.filter((r) => r.tier === tier).map((r) => r[k]);
      return xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    for (const k of ["simTtft", "emuTtft"] as const) expect(mean("iw-fast", k)).toBeLessThan(mean("niw", k));
    // The workload queues: some requests wait well beyond their own prefill.
    expect(rows.some((r) => r.simTtft > 500)).toBe(true);
    // First-token order: any two requests whose simulated first tokens are further apart than the
    // tolerance come in the same order from the emulator.
    for (const a of rows)
      for (const b of rows) {
        if (b.simFirst - a.simFirst > tolerance(b.simTtft) + tolerance(a.simTtft))
          expect(a.emuFirst, `${a.id} before ${b.id}`).toBeLessThan(b.emuFirst);
      }
  }, 60_000);
});
