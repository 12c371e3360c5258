import { describe, expect, it } from "vitest";
import { Instance } from "./instance.js";
import type { Completion, InstanceOptions, InstanceRequest } from "./instance-types.js";

// Hand-checkable timing: prefill costs 1 ms per token computed in the step, a decode iteration 10 ms.
const timing = { prefillMs: (p: number, b: number) => p * b, decodeIterMs: (_b: number) => 10 };
const req = (id: string, over: Partial<InstanceRequest> = {}): InstanceRequest => ({
  id,
  seq: 0,
  tier: "iw-fast",
  arrivalMs: 0,
  inputTokens: 100,
  outputTokens: 11,
  ...over,
});
const make = (over: Partial<InstanceOptions> = {}) =>
  new Instance({ kvCapacityTokens: 100_000, timing, nowMs: 0, ...over });

/** Run the instance's own events up to `until`, returning completions in order. */
function run(inst: Instance, until = 1e9, done: Completion[] = []): Completion[] {
  for (let t = inst.nextEventMs(); t <= until && Number.isFinite(t); t = inst.nextEventMs())
    inst.step(t, done);
  return done;
}
const doneAt = (done: Completion[]) => Object.fromEntries(done.map((d) => [d.req.id, d.doneMs]));

describe("Instance v2 (vLLM V1-like steps, analytic)", () => {
  it("serves one request: one prefill step, then one decode iteration per further token", () => {
    const inst = make();
    const r = req("a");
    inst.submit(r, 0);
    expect(inst.nextEventMs()).toBe(100); // 100 prompt tokens at 1 ms each
    const done = run(inst);
    expect(r.firstTokenMs).toBe(100);
    expect(r.admittedMs).toBe(0);
    expect(done[0]!.doneMs).toBeCloseTo(100 + 10 * 10, 9); // 10 more tokens, 10 ms each
    expect(inst.kvBlocksUsed).toBe(0);
    expect(inst.inFlight).toBe(0);
  });

  it("chunks a prompt longer than the token budget over several steps", () => {
    const inst = make({ maxBatchedTokens: 64, maxNumSeqs: 4 });
    const r = req("a", { outputTokens: 1 });
    inst.submit(r, 0);
    expect(inst.nextEventMs()).toBe(64); // first chunk: 64 tokens
    const done: Completion[] = [];
    inst.step(64, done);
    expect(r.firstTokenMs).toBeUndefined();
    // Second chunk: 36 tokens, plus its attention to the 64 already computed — the curve's excess over
    // linear, g(100) − g(64) − g(36) + g(1) = 1 ms here: the fixed cost of one more step.
    expect(inst.nextEventMs()).toBe(101);
    inst.step(101, done);
    expect(r.firstTokenMs).toBe(101);
    expect(done.map((d) => d.doneMs)).toEqual([101]); // one output token: done with the prefill
  });

  it("caps one request's chunk per step with long_prefill_token_threshold, leaving room for others", () => {
    const inst = make({ maxBatchedTokens: 64, maxNumSeqs: 4, longPrefillTokenThreshold: 16 });
    const long = req("long", { inputTokens: 40, outputTokens: 1 });
    inst.submit(long, 0); // step 1: 16 tokens of it (16 ms)
    const short = req("short", { inputTokens: 8, outputTokens: 1 });
    inst.submit(short, 0); // waits for the step under way
    run(inst, 16);
    // Step 2: 16 more of long + all 8 of short = 24 tokens, + 1 ms for continuing long → 25 ms.
    expect(inst.nextEventMs()).toBe(41);
    run(inst, 41);
    expect(short.firstTokenMs).toBe(41);
    expect(long.firstTokenMs).toBeUndefined();
  });

  it("keeps decoding during a prefill (chunked prefill), each step costing max(decode, compute)", () => {
    const inst = make({ maxBatchedTokens: 64, maxNumSeqs: 4 });
    const a = req("a", { inputTokens: 10, outputTokens: 100 });
    inst.submit(a, 0);
    run(inst, 30); // a: first token at 10, then decoding (10 ms per token)
    expect(a.firstTokenMs).toBe(10);
    const b = req("b", { inputTokens: 100, outputTokens: 2 });
    inst.submit(b, 30);
    expect(inst.generated("a")).toBe(3); // tokens at 10, 20, 30
    // Step 1: a's decode token + 63 of b's prompt → max(10, 64) = 64 ms; step 2: 1 + 37 tokens + 1 ms
    // for continuing b's prompt → 39 ms.
    expect(inst.nextEventMs()).toBe(94);
    run(inst, 94);
    expect(inst.generated("a")).toBe(4);
    run(inst, 133);
    expect(b.firstTokenMs).toBe(133);
    expect(inst.generated("a")).toBe(5); // a was never paused
  });

  it("allocates KV blocks as tokens are produced, not prompt + whole output at admission", () => {
    const inst = make({ kvCapacityTokens: 1_600, blockSize: 16 });
    inst.submit(req("a", { inputTokens: 20, outputTokens: 30 }), 0);
    expect(inst.kvBlocksUsed).toBe(2); // the 20-token prompt: 2 blocks (not ceil(50 / 16) = 4)
    const done: Completion[] = [];
    inst.step(20, done); // prefill done, first token
    expect(inst.kvBlocksUsed).toBe(2); // 21 tokens
    inst.step(20 + 12 * 10, done); // 12 more tokens: 33 tokens → 3 blocks
    expect(inst.kvBlocksUsed).toBe(3);
    run(inst);
    expect(inst.kvBlocksUsed).toBe(0);
  });

  it("preempts the lowest-priority, latest request by recompute when blocks run out", () => {
    // 4 blocks of 4 tokens. b (iw-fast) and a (niw) prefill together, then grow one token per step.
    const inst = make({ kvCapacityTokens: 16, blockSize: 4, maxBatchedTokens: 8, maxNumSeqs: 4 });
    const a = req("a", { tier: "niw", inputTokens: 4, outputTokens: 8 });
    const b = req("b", { tier: "iw-fast", inputTokens: 4, outputTokens: 8 });
    // a and b arrive while a 1-token step of x is under way, so both are scheduled at its end.
    const x = req("x", { tier: "iw-normal", inputTokens: 1, outputTokens: 1 });
    inst.submit(x, 0);
    inst.submit(a, 0);
    inst.submit(b, 0);
    expect(inst.waitingIds()).toEqual(["b", "a"]); // tier order
    const done = run(inst);
    // t=1: x done; b and a prefill together (8 tokens, 8 ms) → first tokens at 9, 5 tokens each = 2 blocks each.
    expect(b.firstTokenMs).toBe(9);
    expect(a.firstTokenMs).toBe(9);
    // Decoding at 10 ms: at 8 tokens each (t = 39) the next token needs a 3rd block each, none free:
    // a (niw) is preempted with 4 tokens generated; b runs on and finishes at 39 + 4 × 10 = 79.
    expect(a.preemptions).toBe(1);
    expect(b.preemptions).toBe(0);
    expect(inst.preemptions).toBe(1);
    const at = doneAt(done);
    expect(at.b).toBeCloseTo(79, 9);
    // Then a recomputes prompt + 4 generated = 8 tokens (8 ms → its 5th token at 87) and decodes 3 more.
    expect(at.a).toBeCloseTo(87 + 30, 9);
    expect(a.firstTokenMs).toBe(9); // its first token was already sent
    expect(done.map((d) => d.req.id)).toEqual(["x", "b", "a"]);
  });

  it("never lets a lower tier overtake a blocked higher-tier head (priority scheduling)", () => {
    // 4 blocks of 4 tokens; r holds 3 of them after its prefill.
    const inst = make({ kvCapacityTokens: 16, blockSize: 4, maxBatchedTokens: 16, maxNumSeqs: 4 });
    const r = req("r", { tier: "iw-normal", inputTokens: 8, outputTokens: 3 });
    inst.submit(r, 0);
    run(inst, 8); // prefill 8 ms; 9 tokens → 3 blocks
    expect(inst.kvBlocksUsed).toBe(3);
    const f = req("f", { tier: "iw-fast", inputTokens: 8, outputTokens: 1 }); // needs 2 blocks: blocked
    const n = req("n", { tier: "niw", inputTokens: 4, outputTokens: 1 }); // needs 1: would fit
    inst.submit(n, 8);
    // n arrived first and fits: admitted (nothing higher is waiting yet).
    expect(inst.runningIds()).toEqual(["r", "n"]);
    run(inst, 12); // n: 4-token prefill + r's decode → max(10, 5) = 10 ms: n done at 18
    const n2 = req("n2", { tier: "niw", inputTokens: 4, outputTokens: 1 });
    inst.submit(f, 12);
    inst.submit(n2, 12);
    expect(inst.waitingIds()).toEqual(["f", "n2"]);
    const done = run(inst);
    const at = doneAt(done);
    // r finishes its 3 tokens at 8 + 2 × 10 = 28 (the step at 8–18 carried its decode); f goes first.
    expect(at.r).toBeCloseTo(28, 9);
    expect(f.admittedMs).toBeCloseTo(28, 9);
    expect(n2.admittedMs!).toBeGreaterThanOrEqual(f.admittedMs!);
  });

  it("fcfs ignores tiers; priority puts iw-fast first", () => {
    for (const scheduling of ["fcfs", "priority"] as const) {
      const inst = make({ maxNumSeqs: 1, scheduling });
      inst.submit(req("x", { tier: "iw-normal", inputTokens: 10, outputTokens: 5 }), 0);
      const n = req("n", { tier: "niw", inputTokens: 10, outputTokens: 1 });
      const f = req("f", { tier: "iw-fast", inputTokens: 10, outputTokens: 1 });
      inst.submit(n, 1);
      inst.submit(f, 2);
      const order = run(inst).map((d) => d.req.id);
      expect(order).toEqual(scheduling === "fcfs" ? ["x", "n", "f"] : ["x", "f", "n"]);
    }
  });

  it("runs at most maxNumSeqs requests at once", () => {
    const inst = make({ maxNumSeqs: 2 });
    for (const id of ["a", "b", "c"]) inst.submit(req(id, { inputTokens: 10, outputTokens: 5 }), 0);
    run(inst, 5);
    expect(inst.batchSize).toBe(1); // a's step was under way when b and c arrived
    run(inst, 10);
    expect(inst.runningIds()).toEqual(["a", "b"]);
    expect(inst.waitingIds()).toEqual(["c"]);
    const done = run(inst);
    expect(done.map((d) => d.req.id)).toEqual(["a", "b", "c"]);
  });

  it("decode-only stretches cost one event per finish, not one per token", () => {
    const inst = make();
    inst.submit(req("a", { inputTokens: 10, outputTokens: 1_000 }), 0);
    let events = 0;
    const done: Completion[] = [];
    for (let t = inst.nextEventMs(); Number.isFinite(t); t = inst.nextEventMs()) {
      inst.step(t, done);
      events++;
    }
    expect(events).toBe(2); // the prefill step, then the finish
    expect(done[0]!.doneMs).toBeCloseTo(10 + 999 * 10, 6);
  });

  it("cancel frees a running request's blocks; takeAll and takeWaiting hand requests back", () => {
    const inst = make({ kvCapacityTokens: 1_600, blockSize: 16, maxNumSeqs: 1 });
    inst.submit(req("a", { inputTokens: 40, outputTokens: 100 }), 0);
    inst.submit(req("b"), 0);
    run(inst, 100);
    expect(inst.kvBlocksUsed).toBeGreaterThan(0);
    expect(inst.cancel("a", 100)).toBe(true);
    expect(inst.cancel("a", 100)).toBe(false);
    expect(inst.runningIds()).toEqual(["b"]); // b admitted at once
    expect(inst.takeAll().map((r) => r.id)).toEqual(["b"]);
    expect(inst.kvBlocksUsed).toBe(0);
    expect(inst.nextEventMs()).toBe(Number.POSITIVE_INFINITY);
  });

  it("counts each decoding request's KV blocks exactly at any moment (with or without the id index)", () => {
    for (const indexIds of [true, false]) {
      const inst = make({ kvCapacityTokens: 16_000, blockSize: 16, indexIds });
      // Prompts at different offsets within a block, so the three cross block boundaries at different steps.
      const reqs = [
        req("a", { inputTokens: 40, outputTokens: 90 }),
        req("b", { inputTokens: 47, outputTokens: 70 }),
      ];
      for (const r of reqs) inst.submit(r, 0);
      inst.submit(req("c", { inputTokens: 1, outputTokens: 60 }), 300);
      const done: Completion[] = [];
      let checked = 0;
      for (let t = 0; t <= 1_500; t += 7) {
        inst.step(t, done);
        const live = ["a", "b", "c"].filter((id) => inst.generated(id) !== undefined);
        if (inst.currentStepMs() === 10 && live.length > 0) {
          // Mid decode stretch: blocks are exactly ceil((prompt + generated) / 16) per request.
          const want = live
            .map((id) => {
              const input = id === "a" ? 40 : id === "b" ? 47 : 1;
              return Math.ceil((input + inst.generated(id)!) / 16);
            })
            .reduce((x, y) => x + y, 0);
          expect(inst.kvBlocksUsed, `t=${t} index=${indexIds}`).toBe(want);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(50);
      run(inst, 1e9, done);
      expect(done.map((d) => d.req.id).sort()).toEqual(["a", "b", "c"]);
      expect(inst.kvBlocksUsed).toBe(0);
      expect(inst.cancel("a", 2_000)).toBe(false);
    }
  });

  it("decides exactly as with a full KV count at every step (random load, KV pressure, preemption)", () => {
    // A tiny LCG keeps the test self-contained and deterministic.
    let x = 12345;
    const rnd = () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      return x / 2 ** 31;
    };
    const reqs: InstanceRequest[] = [];
    for (let i = 0, t = 0; i < 3_000; i++) {
      t += Math.floor(rnd() * 6);
      const tier = rnd() < 0.2 ? "niw" : rnd() < 0.5 ? "iw-normal" : "iw-fast";
      reqs.push(
        req(`r${i}`, {
          arrivalMs: t,
          tier,
          inputTokens: 1 + Math.floor(rnd() * 700),
          outputTokens: 1 + Math.floor(rnd() * 400),
        }),
      );
    }
    const timingB = { prefillMs: (p: number) => 0.05 * p + 2, decodeIterMs: (b: number) => 4 + 0.02 * b };
    // Requests decoding in lockstep with long outputs: their growth runs the KV out long before the
    // first of them finishes (the run-out prediction on a plan that skipped the count).
    const lockstep = Array.from({ length: 48 }, (_, i) =>
      req(`l${i}`, { arrivalMs: 0, inputTokens: 16, outputTokens: 800 }),
    );
    const trace = (
      alwaysSync: boolean,
      kvCapacityTokens: number,
      niwKvShare: number,
      load: InstanceRequest[],
    ) => {
      const inst = make({
        timing: timingB,
        kvCapacityTokens,
        blockSize: 16,
        maxNumSeqs: 64,
        maxBatchedTokens: 1_024,
        niwKvShare,
        alwaysSync,
        indexIds: false,
      });
      const done: Completion[] = [];
      const kv: number[] = [];
      for (const r of load) {
        inst.step(r.arrivalMs, done);
        kv.push(inst.kvBlocksUsed);
        inst.submit({ ...r }, r.arrivalMs);
      }
      run(inst, 1e12, done);
      return {
        done: done.map(
          (d) => `${d.req.id}@${d.doneMs.toFixed(6)}/${d.req.firstTokenMs?.toFixed(6)}/${d.req.preemptions}`,
        ),
        kv,
        preemptions: inst.preemptions,
      };
    };
    // Roomy (the bound lets most decisions skip the count), tight (preemptions), an NIW share, lockstep.
    for (const [kvTokens, share, load] of [
      [400_000, 1, reqs],
      [24_000, 1, reqs],
      [40_000, 0.5, reqs],
      [19_200, 1, lockstep],
    ] as const) {
      const exact = trace(true, kvTokens, share, load);
      const fast = trace(false, kvTokens, share, load);
      expect(fast.done.length).toBe(load.length);
      expect(fast.preemptions).toBe(exact.preemptions);
      expect(fast.kv).toEqual(exact.kv);
      expect(fast.done).toEqual(exact.done);
      if (kvTokens === 24_000 || load === lockstep) expect(exact.preemptions).toBeGreaterThan(0);
    }
  });

  it("refuses a request whose prompt and output can never fit its KV cache", () => {
    const inst = make({ kvCapacityTokens: 64, blockSize: 16 });
    expect(inst.submit(req("big", { inputTokens: 60, outputTokens: 10 }), 0)).toBe(false);
    expect(inst.submit(req("ok", { inputTokens: 54, outputTokens: 10 }), 0)).toBe(true);
  });

  it("reports how long the oldest request of a tier has waited for its first token", () => {
    const inst = make({ maxNumSeqs: 1 });
    inst.submit(req("x", { tier: "niw", inputTokens: 10, outputTokens: 1_000 }), 0); // holds the one slot
    inst.submit(req("f1", { tier: "iw-fast", receivedMs: 100 }), 100);
    inst.submit(req("f2", { tier: "iw-fast", receivedMs: 300 }), 300);
    inst.submit(req("n1", { tier: "iw-normal", receivedMs: 200 }), 200);
    expect(inst.oldestWaitMs("iw-fast", 1_000)).toBe(900); // f1, since it was received
    expect(inst.oldestWaitMs("iw-normal", 1_000)).toBe(800);
    expect(inst.oldestWaitMs("niw", 1_000)).toBe(0); // x has its first token
  });

  it("rejects a token budget below max_num_seqs", () => {
    expect(() => make({ maxNumSeqs: 16, maxBatchedTokens: 8 })).toThrow(/maxBatchedTokens/);
  });
});
