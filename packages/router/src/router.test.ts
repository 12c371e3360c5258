import {
  DemandReport,
  envelope,
  Heartbeat,
  InferenceRequest,
  LoadReport,
  type Payload,
  Plan,
  RequestDone,
  RouteRequest,
  validateReply,
} from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { toInference } from "./messages.js";
import { RouterActor } from "./router.js";

/**
 * Node liveness in the router, on virtual time: an instance leaves routing when its node's heartbeats
 * stop for their TTL (not 30 s later when its last load report goes stale), and a re-routed request
 * never goes back to the nodes named in `avoidNodes`.
 */
async function world() {
  const clock = new VirtualClock({ startMs: 0 });
  const broker = new MemoryBroker(clock);
  const router = new RouterActor(
    { bus: broker.connect("router"), clock },
    { regions: ["westus"], models: ["m"], maxPendingMs: 1_000 },
  );
  await router.start();
  const node = broker.connect("nodes");
  const forwarded: Payload<typeof InferenceRequest>[] = [];
  node.subscribe(InferenceRequest.subject.pattern(), (m) => {
    const d = m.data();
    if (d.ok) forwarded.push(d.value as Payload<typeof InferenceRequest>);
  });
  const alive = new Set(["n1", "n2"]);
  const beat = () => {
    for (const n of alive) {
      node.publish(
        LoadReport.subject.build({ region: "westus", model: "m", instance: `${n}-i0` }),
        envelope(LoadReport, {
          ...LoadReport.sample(),
          instanceId: `${n}-i0`,
          nodeId: n,
          region: "westus",
          model: "m",
          state: "serving",
          kvUtilization: 0.1,
          outstandingTokens: 0,
          running: 0,
          waiting: 0,
          atMs: clock.now(),
        }),
      );
      node.publish(
        Heartbeat.subject.build({ region: "westus", node: n }),
        envelope(Heartbeat, {
          ...Heartbeat.sample(),
          nodeId: n,
          region: "westus",
          instances: [{ instanceId: `${n}-i0`, model: "m", state: "serving" }],
          ttlMs: 1_500,
          atMs: clock.now(),
        }),
      );
    }
  };
  const route = async (requestId: string, avoidNodes?: string[]) => {
    const p = node.request(
      RouteRequest.subject.build({ region: "westus", model: "m" }),
      envelope(RouteRequest, {
        ...RouteRequest.sample(),
        requestId,
        model: "m",
        originRegion: "westus",
        ...(avoidNodes ? { attempt: 1, avoidNodes } : {}),
      }),
      { timeoutMs: 1_000 },
    );
    await clock.advance(10);
    const d = (await p).data();
    const r = d.ok ? validateReply(RouteRequest, d.value) : d;
    if (!r.ok) throw r.error;
    return r.value;
  };
  return { clock, router, alive, beat, route, forwarded };
}

describe("router node liveness", () => {
  it("stops routing to a node silent for its heartbeat TTL, long before its load report goes stale", async () => {
    const w = await world();
    for (let t = 0; t < 4; t++) {
      w.beat();
      await w.clock.advance(500);
    }
    expect(w.router.routableInstances("m").map((i) => i.nodeId)).toEqual(["n1", "n2"]);
    // n1 dies: nothing more from it. 1,000 ms after its last heartbeat it is still in routing…
    w.alive.delete("n1");
    w.beat();
    await w.clock.advance(1_000);
    expect(w.router.routableInstances("m").map((i) => i.nodeId)).toEqual(["n1", "n2"]);
    // …and once its 1,500 ms TTL has passed it is out (its last load report is 2 s old, far from stale).
    w.beat();
    await w.clock.advance(600);
    expect(w.router.routableInstances("m").map((i) => i.nodeId)).toEqual(["n2"]);
    for (let i = 0; i < 5; i++) expect((await w.route(`r${i}`)).nodeId).toBe("n2");
    // Heard from again (a restarted agent), it is routable again.
    w.alive.add("n1");
    w.beat();
    await w.clock.advance(10);
    expect(w.router.routableInstances("m").map((i) => i.nodeId)).toEqual(["n1", "n2"]);
  });

  it("never routes a retried request back to a node it failed on; with every node avoided it is held", async () => {
    const w = await world();
    w.beat();
    await w.clock.advance(10);
    for (let i = 0; i < 4; i++) expect((await w.route(`x${i}`, ["n1"])).nodeId).toBe("n2");
    for (let i = 0; i < 4; i++) expect((await w.route(`y${i}`, ["n2"])).nodeId).toBe("n1");
    const held = await w.route("z", ["n1", "n2"]);
    expect(held).toMatchObject({ decision: "queued" });
    expect(held.nodeId).toBeUndefined();
    expect(w.forwarded.find((f) => f.requestId === "x0")).toMatchObject({ attempt: 1, avoidNodes: ["n1"] });
  });
});

describe("router restart", () => {
  it("follows the plan stored in KV from its start, before the next plan is published", async () => {
    const clock = new VirtualClock({ startMs: 0 });
    const broker = new MemoryBroker(clock);
    const planner = broker.connect("planner");
    await planner.kvPut("sage-plans", "latest", {
      ...Plan.sample(),
      v: Plan.version,
      planId: "planner-1-p7",
      routing: [{ model: "m", from: "westus", to: "eastus", fraction: 1 }],
    });
    const router = new RouterActor(
      { bus: broker.connect("router"), clock },
      { regions: ["westus", "eastus"], models: ["m"] },
    );
    await router.start();
    await clock.advance(10);
    expect(router.planRoutes()).toEqual({ "m|westus": [{ to: "eastus", fraction: 1 }] });
    const node = broker.connect("nodes");
    for (const region of ["westus", "eastus"]) {
      node.publish(
        LoadReport.subject.build({ region, model: "m", instance: `${region}-i0` }),
        envelope(LoadReport, {
          ...LoadReport.sample(),
          instanceId: `${region}-i0`,
          nodeId: `${region}-n`,
          region,
          model: "m",
          state: "serving",
          kvUtilization: 0.1,
          atMs: clock.now(),
        }),
      );
    }
    await clock.advance(10);
    const p = node.request(
      RouteRequest.subject.build({ region: "westus", model: "m" }),
      envelope(RouteRequest, {
        ...RouteRequest.sample(),
        requestId: "q",
        model: "m",
        originRegion: "westus",
      }),
      { timeoutMs: 1_000 },
    );
    await clock.advance(10);
    const d = (await p).data();
    const r = d.ok ? validateReply(RouteRequest, d.value) : d;
    expect(r.ok && r.value.region).toBe("eastus");
  });
});

describe("router, a region cut off", () => {
  it("spills its interactive traffic to the allowed regions only; with none left it holds the request", async () => {
    const clock = new VirtualClock({ startMs: 0 });
    const broker = new MemoryBroker(clock);
    const router = new RouterActor(
      { bus: broker.connect("router"), clock },
      {
        regions: ["westus", "eastus", "centralus"],
        models: ["m"],
        config: { spillTargets: { westus: ["eastus"] } },
      },
    );
    await router.start();
    const node = broker.connect("nodes");
    const report = (region: string, state: "serving" | "failed", kvUtilization: number) =>
      node.publish(
        LoadReport.subject.build({ region, model: "m", instance: `${region}-i0` }),
        envelope(LoadReport, {
          ...LoadReport.sample(),
          instanceId: `${region}-i0`,
          nodeId: `${region}-n`,
          region,
          model: "m",
          state,
          kvUtilization,
          atMs: clock.now(),
        }),
      );
    const route = async (id: string) => {
      const p = node.request(
        RouteRequest.subject.build({ region: "westus", model: "m" }),
        envelope(RouteRequest, {
          ...RouteRequest.sample(),
          requestId: id,
          model: "m",
          originRegion: "westus",
        }),
        { timeoutMs: 1_000 },
      );
      await clock.advance(10);
      const d = (await p).data();
      const r = d.ok ? validateReply(RouteRequest, d.value) : d;
      if (!r.ok) throw r.error;
      return r.value;
    };
    // westus's instance failed; eastus is busy (above the spill threshold), centralus idle but not allowed.
    report("westus", "failed", 0);
    report("eastus", "serving", 0.95);
    report("centralus", "serving", 0.05);
    await clock.advance(10);
    for (let i = 0; i < 3; i++) expect(await route(`a${i}`)).toMatchObject({ region: "eastus" });
    // eastus fails too: nothing allowed is left, so the request is held (then rejected), never sent to centralus.
    report("eastus", "failed", 0);
    await clock.advance(10);
    const held = await route("b");
    expect(held).toMatchObject({ decision: "queued", region: "westus" });
    expect(held.nodeId).toBeUndefined();
    expect(router.pendingCount).toBe(1);
  });
});

describe("router demand history", () => {
  it("replaces a request's estimated prompt tokens with the engine's count when it finishes", async () => {
    const clock = new VirtualClock({ startMs: 0 });
    const broker = new MemoryBroker(clock);
    const router = new RouterActor(
      { bus: broker.connect("router"), clock },
      { regions: ["westus"], models: ["m"], demandFromEngine: true },
    );
    await router.start();
    const client = broker.connect("client");
    const reports: Payload<typeof DemandReport>[] = [];
    client.subscribe(DemandReport.subject.pattern(), (m) => {
      const d = m.data();
      if (d.ok) reports.push(d.value as Payload<typeof DemandReport>);
    });
    const done = (requestId: string, inputTokens: number) =>
      client.publish(
        RequestDone.subject.build({ region: "westus", model: "m" }),
        envelope(RequestDone, {
          ...RequestDone.sample(),
          requestId,
          model: "m",
          region: "westus",
          inputTokens,
        }),
      );
    for (const id of ["r1", "r2"]) {
      void client.request(
        RouteRequest.subject.build({ region: "westus", model: "m" }),
        envelope(RouteRequest, { ...RouteRequest.sample(), requestId: id, model: "m", inputTokens: 100 }),
        { timeoutMs: 1_000 },
      );
    }
    await clock.advance(10);
    // r1 finished after a re-route (its attempt's id), with the engine counting 130 prompt tokens; r2 as
    // estimated; an unknown request changes nothing.
    done("r1-a1", 130);
    done("r2", 100);
    done("r9", 5_000);
    await clock.advance(60_000);
    const fast = reports.find((r) => r.model === "m")!.byTier["iw-fast"];
    expect(fast).toMatchObject({ requests: 2, inputTokens: 230 });
  });
});

describe("router hand-off message", () => {
  it("carries every RouteRequest field to the InferenceRequest (and nothing unset)", () => {
    const every: Payload<typeof RouteRequest> = {
      ...RouteRequest.sample(),
      stream: true,
      deadlineMs: 2_000_000_000_000,
      attempt: 2,
      avoidNodes: ["n-1"],
      body: { messages: [{ role: "user", content: "hi" }] },
      streamTo: "gateway-1",
      resultKey: "batch_abc.3",
    };
    // The fixture sets every field the schema has, so a field added later fails here until copied.
    expect(Object.keys(every).sort()).toEqual(Object.keys(RouteRequest.schema.shape).sort());
    expect(toInference(every, "i-1")).toEqual({ ...every, instanceId: "i-1" });
    const bare: Payload<typeof RouteRequest> = { ...RouteRequest.sample(), stream: false };
    for (const k of ["deadlineMs", "attempt", "avoidNodes", "body", "streamTo", "resultKey"] as const)
      delete bare[k];
    expect(Object.keys(toInference(bare, "i-1")).sort()).toEqual([...Object.keys(bare), "instanceId"].sort());
  });
});
