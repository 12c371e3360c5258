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

  it("refuses a request larger than its whole KV cache", () => {
    const inst = new Instance(50, timing, 0);
    expect(inst.submit(req(1), 0)).toBe(false);
    expect(inst.inFlight).toBe(0);
  });
});
