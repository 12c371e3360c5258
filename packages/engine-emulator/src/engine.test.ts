import { describe, expect, it } from "vitest";
import { type EngineRequest, RealtimeEngine } from "./engine.js";

// 1 ms per prompt token, 2 ms per decode step: fast enough for a unit test on the wall clock.
const timing = { prefillMs: (p: number) => p, decodeIterMs: () => 2 };

function request(id: string, tier: EngineRequest["tier"], maxTokens: number, log: string[]) {
  return new Promise<number[]>((resolve) => {
    const tokens: number[] = [];
    const req: EngineRequest = {
      id,
      promptTokens: 5,
      maxTokens,
      ...(tier ? { tier } : {}),
      onToken: (i) => tokens.push(i),
      onDone: (reason) => {
        log.push(`${id}:${reason}`);
        resolve(tokens);
      },
    };
    pending.push(req);
  });
}
let pending: EngineRequest[] = [];

describe("RealtimeEngine (the simulator's engine model on the wall clock)", () => {
  it("streams every token in order and finishes with 'length'", async () => {
    const engine = new RealtimeEngine(timing, 10_000, 8);
    const log: string[] = [];
    pending = [];
    const p = request("a", undefined, 20, log);
    expect(engine.submit(pending[0]!)).toBe(true);
    expect(await p).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(log).toEqual(["a:length"]);
    expect(engine.stats()).toMatchObject({
      running: 0,
      waiting: 0,
      generationTokensTotal: 20,
      requestsFinished: 1,
    });
    engine.stop();
  });

  it("under --scheduling-policy priority a later iw-fast request overtakes waiting batch work; fcfs keeps arrival order", async () => {
    for (const scheduling of ["priority", "fcfs"] as const) {
      const engine = new RealtimeEngine(timing, 10_000, 1, undefined, { scheduling });
      const log: string[] = [];
      pending = [];
      const all = [
        request("first", "iw-normal", 10, log),
        request("batch", "niw", 3, log),
        request("fast", "iw-fast", 3, log),
      ];
      for (const r of pending) engine.submit(r);
      await Promise.all(all);
      expect(log).toEqual(
        scheduling === "priority"
          ? ["first:length", "fast:length", "batch:length"]
          : ["first:length", "batch:length", "fast:length"],
      );
      engine.stop();
    }
  });

  it("abort frees the request at once and the next one runs", async () => {
    const engine = new RealtimeEngine(timing, 1_000_000, 1);
    const log: string[] = [];
    pending = [];
    const a = request("a", undefined, 100_000, log);
    const b = request("b", undefined, 2, log);
    for (const r of pending) expect(engine.submit(r)).toBe(true);
    expect(engine.submit({ ...pending[1]!, id: "too-big", maxTokens: 2_000_000 })).toBe(false);
    await new Promise((r) => setTimeout(r, 30));
    engine.abort("a");
    await a;
    await b;
    expect(log).toEqual(["a:abort", "b:length"]);
    expect(engine.stats().running).toBe(0);
    engine.stop();
  });
});
