import { describe, expect, it } from "vitest";
import { type Completion, Instance, type InstanceRequest } from "./instance.js";

const timing = { prefillMs: (_p: number, b: number) => 100 * b, decodeIterMs: (b: number) => 10 + b };
const req = (id: number, over: Partial<InstanceRequest> = {}): InstanceRequest => ({
  id: `r${id}`,
  seq: id,
  tier: "iw-fast",
  arrivalMs: 0,
  inputTokens: 100,
  outputTokens: 11,
  ...over,
});

function drain(inst: Instance, until = 1e9): Completion[] {
  const done: Completion[] = [];
  for (let t = inst.nextEventMs(); t <= until && Number.isFinite(t); t = inst.nextEventMs())
    inst.step(t, done);
  return done;
}

describe("Instance (analytic continuous batching)", () => {
  it("serves one request: prefill, then one iteration per further token", () => {
    const inst = new Instance(10_000, timing, 0);
    inst.submit(req(1), 0);
    const [c] = drain(inst);
    expect(c!.req.firstTokenMs).toBe(100);
    expect(c!.doneMs).toBeCloseTo(100 + 10 * 11, 6); // batch of 1: 11 ms per iteration
    expect(inst.kvReserved).toBe(0);
  });

  it("batches concurrent requests: the decode iteration slows with batch size", () => {
    const inst = new Instance(10_000, timing, 0);
    inst.submit(req(1), 0);
    inst.submit(req(2), 0); // waits for the first prefill batch
    const done = drain(inst);
    expect(done.map((d) => d.req.id)).toEqual(["r1", "r2"]);
    expect(done[1]!.req.firstTokenMs).toBe(200);
    // r1 decodes alone at 11 ms until r2 joins at 200, then both at 12 ms.
    expect(done[0]!.doneMs).toBeGreaterThan(100 + 10 * 11 - 1e-6);
  });

  it("queues by KV memory and serves IW-fast before IW-normal before NIW", () => {
    const inst = new Instance(250, timing, 0);
    inst.submit(req(1, { tier: "niw" }), 0); // admitted at once (111 tokens)
    inst.submit(req(2, { tier: "niw" }), 0);
    inst.submit(req(3, { tier: "iw-normal" }), 0);
    inst.submit(req(4, { tier: "iw-fast" }), 0);
    expect(inst.waitingCount).toBe(3);
    const order = drain(inst).map((d) => d.req.id);
    expect(order[0]).toBe("r1");
    expect(order.indexOf("r4")).toBeLessThan(order.indexOf("r3"));
    expect(order.indexOf("r3")).toBeLessThan(order.indexOf("r2"));
  });

  it("costs a mixed prefill batch at its mean prompt, not its longest", () => {
    const linear = { prefillMs: (p: number, b: number) => p * b * 0.01, decodeIterMs: () => 10 };
    const inst = new Instance(1e6, linear, 0);
    inst.submit(req(0, { inputTokens: 10 }), 0); // a first batch, so the next four queue together
    for (const [i, p] of [8000, 1000, 1000, 1000].entries()) inst.submit(req(i + 1, { inputTokens: p }), 0);
    const done = drain(inst);
    // Batch two: 4 prompts, 11,000 tokens → the curve at 2,750 × 4 = 110 ms after the first (0.1 ms).
    expect(done.find((d) => d.req.id === "r2")!.req.firstTokenMs).toBeCloseTo(0.1 + 110, 6);
  });

  it("prefills at most maxPrefillTokens per batch, in tier order; a longer prompt goes alone", () => {
    const inst = new Instance(1e6, timing, 0, 512, 300);
    inst.submit(req(0), 0); // the first batch
    inst.submit(req(1, { tier: "niw", inputTokens: 50 }), 0);
    inst.submit(req(2), 0);
    inst.submit(req(3), 0);
    inst.submit(req(4, { inputTokens: 900 }), 0);
    const first = new Map(drain(inst).map((d) => [d.req.id, d.req.firstTokenMs!]));
    // Batch 2: r2 + r3 (200 tokens); r4 (900) would exceed 300 and waits for a batch of its own; the
    // small NIW r1 fills the budget left (work-conserving: admission never idles the GPU).
    expect(first.get("r2")).toBe(first.get("r3"));
    expect(first.get("r1")).toBe(first.get("r3"));
    expect(first.get("r4")!).toBeGreaterThan(first.get("r3")!);
  });

  it("keeps batch (NIW) requests to their share of the KV cache", () => {
    const inst = new Instance(1_000, timing, 0, 512, Number.POSITIVE_INFINITY, 0.3);
    for (let i = 0; i < 5; i++) inst.submit(req(i, { tier: "niw" }), 0); // 111 tokens each
    inst.step(inst.nextEventMs(), []);
    expect(inst.niwKv).toBeLessThanOrEqual(300);
    expect(inst.waitingCount).toBeGreaterThan(0);
  });

  it("refuses a request larger than its whole KV cache", () => {
    const inst = new Instance(50, timing, 0);
    expect(inst.submit(req(1), 0)).toBe(false);
    expect(inst.inFlight).toBe(0);
  });
});
