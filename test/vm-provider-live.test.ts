import { NatsBus } from "@sageserve/nats";
import { envelope, InstanceTransition, type Payload, VmCommand, validateReply } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { WallClock } from "@sageserve/runtime";
import { LocalProcessBackend, VmProviderActor } from "@sageserve/vm-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";

const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/** With no spot VM to reclaim or donate, the region agent boots VMs through the VM provider. */
describe("local-process VM provider, live", () => {
  let fx: NatsFixture;
  const clock = new WallClock({ seed: 6 });
  const buses: NatsBus[] = [];
  let backend: LocalProcessBackend;
  let provider: VmProviderActor;
  let agent: RegionAgentActor;
  const serving = new Set<string>();

  const connect = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return bus;
  };

  beforeAll(async () => {
    fx = await startNats();
    backend = new LocalProcessBackend({
      connect,
      clock,
      engineCommand: [process.execPath, bin, "emulator", "--model", "{model}", "--port", "{port}"],
      maxVms: 3,
      loadReportMs: 200,
    });
    provider = new VmProviderActor({ bus: await connect("provider"), clock }, "westus", backend);
    await provider.start();
    const watch = await connect("watch");
    watch.subscribe(InstanceTransition.subject.pattern({ region: "westus" }), (m) => {
      const d = m.data();
      if (!d.ok) return;
      const t = d.value as Payload<typeof InstanceTransition>;
      if (t.to === "serving") serving.add(t.nodeId);
      else serving.delete(t.nodeId);
    });
  });

  afterAll(async () => {
    await agent?.stop();
    await provider?.stop();
    await backend?.releaseAll();
    for (const b of buses) await b.close();
    clock.cancelAll();
    await fx?.stop();
  });

  it("boots the minimum number of instances for an endpoint that has none", async () => {
    agent = new RegionAgentActor(
      { bus: await connect("agent"), clock },
      {
        region: "westus",
        models: ["llama3.2-3b"],
        mode: "unified",
        gpuTypes: ["h100"],
        scalingIntervalMs: 250,
        cooldowns: { bootMs: 300 },
      },
    );
    await agent.start();
    for (let i = 0; i < 150 && serving.size < 2; i++) await clock.sleep(100);
    expect(serving.size).toBe(2);
    expect(agent.actions.boot).toBe(2);
    expect(provider.booted).toBe(2);
    expect(backend.size).toBe(2);
  }, 30_000);

  it("refuses to boot beyond its supply, with a reason", async () => {
    await backend.boot({ region: "westus", gpuType: "h100", model: "llama3.2-3b" }); // the last of 3
    expect(backend.capacityLeft("westus", "h100")).toBe(0);
    const client = await connect("client");
    const m = await client.request(
      VmCommand.subject.build({ region: "westus" }),
      envelope(VmCommand, {
        commandId: "c-x",
        action: "boot",
        gpuType: "h100",
        model: "llama3.2-3b",
        issuedAtMs: Date.now(),
      }),
      { timeoutMs: 5_000 },
    );
    const d = m.data();
    const r = d.ok ? validateReply(VmCommand, d.value) : d;
    expect(r.ok && r.value).toMatchObject({ accepted: false, message: "no h100 capacity left in westus" });
  }, 30_000);
});
