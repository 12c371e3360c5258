import { envelope, LoadReport, type Payload, VmCommand } from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { RegionAgentActor } from "./agent.js";

/**
 * The region agent's scaling signal on virtual time: an endpoint whose KV cache is nearly empty but
 * whose engine slots are full (a small model on a big VM) must read as full and get another instance.
 */
async function world(report: Partial<Payload<typeof LoadReport>>) {
  const clock = new VirtualClock({ startMs: 0 });
  const broker = new MemoryBroker(clock);
  const agent = new RegionAgentActor(
    { bus: broker.connect("agent"), clock },
    {
      region: "westus",
      models: ["llama3.2-3b"],
      mode: "unified",
      gpuTypes: ["h100"],
      scalingIntervalMs: 1_000,
      reactive: { minInstances: 1 },
    },
  );
  await agent.start();
  const boots: Payload<typeof VmCommand>[] = [];
  const provider = broker.connect("provider");
  provider.subscribe(VmCommand.subject.build({ region: "westus" }), (m) => {
    const d = m.data();
    if (!d.ok) return;
    const cmd = d.value as Payload<typeof VmCommand>;
    boots.push(cmd);
    // Refused, so the agent keeps asking every interval instead of waiting for a boot.
    m.respond(envelope(VmCommand, { commandId: cmd.commandId, accepted: false, reason: "test" }));
  });
  const client = broker.connect("node");
  const send = () =>
    client.publish(
      LoadReport.subject.build({ region: "westus", model: "llama3.2-3b", instance: "i1" }),
      envelope(LoadReport, {
        instanceId: "i1",
        nodeId: "n1",
        region: "westus",
        model: "llama3.2-3b",
        gpuType: "h100",
        state: "serving",
        kvUtilization: 0.03,
        memoryUtilization: 0.03,
        running: 0,
        waiting: 0,
        outstandingTokens: 0,
        tokensPerSecond: 0,
        kvCapacityTokens: 5_000_000,
        atMs: clock.now(),
        ...report,
      }),
    );
  return { clock, agent, boots, send };
}

describe("region agent scaling signal", () => {
  it("reads an instance with full sequence slots as full although its KV cache is nearly empty", async () => {
    const w = await world({ running: 512, waiting: 80, maxRunning: 512 });
    w.send();
    await w.clock.advance(10);
    expect(w.agent.snapshot("llama3.2-3b", undefined).utilization).toBe(1);
    for (let t = 0; t < 3; t++) {
      w.send();
      await w.clock.advance(1_000);
    }
    expect(w.boots.some((b) => b.action === "boot" && b.model === "llama3.2-3b")).toBe(true);
  });

  it("without a reported slot limit, KV alone decides: the same instance reads as idle", async () => {
    const w = await world({ running: 512, waiting: 80 });
    w.send();
    await w.clock.advance(10);
    expect(w.agent.snapshot("llama3.2-3b", undefined).utilization).toBeCloseTo(0.03);
    for (let t = 0; t < 3; t++) {
      w.send();
      await w.clock.advance(1_000);
    }
    expect(w.boots.filter((b) => b.action === "boot")).toEqual([]);
  });
});
