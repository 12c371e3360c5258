import { builtinPerformanceModel } from "@sageserve/engine";
import { InferenceRequest, LoadReport } from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { SimFleet } from "./fleet.js";
import { IDLE_REPORT_MS } from "./fleet-options.js";

describe("simulated fleet load reports", () => {
  it("reports a busy instance every 5 s and an idle one only as a 20 s keep-alive", async () => {
    const clock = new VirtualClock({ seed: 1 });
    const t0 = clock.now();
    const broker = new MemoryBroker(clock, { codec: "none", trustAll: true });
    const fleet = new SimFleet(
      { bus: broker.connect("fleet"), clock, validateOutgoing: false },
      { perf: builtinPerformanceModel(), regions: ["eastus"], horizonMs: 3_600_000 },
    );
    await fleet.start();
    const seen: { atS: number; running: number; waiting: number }[] = [];
    const watcher = broker.connect("watcher");
    watcher.subscribe(LoadReport.subject.pattern(), (m) => {
      const r = m.data();
      if (!r.ok) throw r.error;
      const p = r.value as { atMs: number; running: number; waiting: number };
      seen.push({ atS: (p.atMs - t0) / 1000, running: p.running, waiting: p.waiting });
    });
    const vm = fleet.deploy("eastus", "h100", "llama3.1-8b");
    await clock.advance(60_000);
    // Idle from the start: the deployment's report, then one every IDLE_REPORT_MS.
    expect(IDLE_REPORT_MS).toBe(20_000);
    expect(seen.map((r) => r.atS)).toEqual([0, 20, 40, 60]);

    // A long request makes it busy: a report at every 5 s tick while it runs.
    seen.length = 0;
    watcher.publish(
      InferenceRequest.subject.build({ node: vm.nodeId }),
      {
        requestId: "r1",
        model: "llama3.1-8b",
        tier: "iw-normal",
        originRegion: "eastus",
        inputTokens: 1_000,
        maxOutputTokens: 4_000,
        arrivalMs: clock.now(),
        stream: false,
        instanceId: vm.instanceId,
      },
      { validated: true },
    );
    await clock.advance(45_000);
    // Busy at every 5 s tick while it runs (~20 s), then the first idle report, then the keep-alive.
    expect(seen.map((r) => [r.atS, r.running + r.waiting])).toEqual([
      [65, 1],
      [70, 1],
      [75, 1],
      [80, 0],
      [100, 0],
    ]);
    await fleet.stop();
  });
});
