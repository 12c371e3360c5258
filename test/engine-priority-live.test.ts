import { GatewayActor } from "@sageserve/gateway";
import { NatsBus } from "@sageserve/nats";
import { LoadReport, type Payload } from "@sageserve/protocol";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";
import { type NodeProcess, spawnNodeAgent, until } from "./support/procs.js";

/**
 * Issue 14, item 3: a request's tier reaches the engine as its scheduling priority. A real
 * `sageserve node-agent` process (`--engine-priority on`) runs an engine-emulator process started as
 * vLLM would be (`--scheduling-policy priority`), over a real nats-server; the gateway and the router
 * run in this process. The emulator's `emulator:requests_by_tier_total` counts the tier each request
 * reached its engine with — the tier it made of the `priority` field in the body it received.
 */
describe("engine priority: the gateway's tier reaches the engine as vLLM's priority", () => {
  let fx: NatsFixture;
  const clock = new WallClock({ seed: 14 });
  const buses: NatsBus[] = [];
  let node: NodeProcess;
  let router: RouterActor;
  let gateway: GatewayActor;
  const loads = new Map<string, Payload<typeof LoadReport>>();
  const MODEL = "llama3.2-3b";
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  const tiers = async () => {
    const text = await (await fetch(`${node.engineUrl}/metrics`)).text();
    const count = (tier: string) =>
      Number(
        new RegExp(`emulator:requests_by_tier_total\\{[^}]*tier="${tier}"[^}]*\\} (\\d+)`).exec(text)?.[1] ??
          0,
      );
    return { "iw-fast": count("iw-fast"), "iw-normal": count("iw-normal"), niw: count("niw") };
  };
  const chat = (tier: "fast" | "normal") =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-sage-tier": tier },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 3 }),
    });

  beforeAll(async () => {
    fx = await startNats();
    router = new RouterActor(await ctx("router"), { regions: ["westus"], models: [MODEL] });
    gateway = new GatewayActor(await ctx("gateway"), { region: "westus", models: [MODEL] });
    await router.start();
    await gateway.start();
    const watch = (await ctx("watcher")).bus;
    watch.subscribe(LoadReport.subject.pattern(), (m) => {
      const d = m.data();
      if (d.ok)
        loads.set((d.value as Payload<typeof LoadReport>).instanceId, d.value as Payload<typeof LoadReport>);
    });
    await watch.flush();
    node = await spawnNodeAgent({
      natsUrl: fx.url,
      nodeId: "westus-prio",
      region: "westus",
      model: MODEL,
      speedup: 20,
      engineArgs: ["--scheduling-policy", "priority"],
      agentArgs: ["--engine-priority", "on"],
    });
    const serving = await until(
      () =>
        loads.get(node.instanceId)?.state === "serving" &&
        router.routableInstances(MODEL).some((i) => i.instanceId === node.instanceId),
      40_000,
    );
    expect(serving, "node serving and routable").toBe(true);
  }, 60_000);

  afterAll(async () => {
    await node?.stop();
    await gateway?.stop();
    await router?.stop();
    for (const b of buses) await b.close();
    clock.cancelAll();
    await fx?.stop();
  }, 30_000);

  it("an IW-fast request reaches the engine with priority 0 (IW-fast), an IW-normal one with 1", async () => {
    expect(await tiers()).toEqual({ "iw-fast": 0, "iw-normal": 0, niw: 0 });
    const fast = await chat("fast");
    expect(fast.status).toBe(200);
    await fast.json();
    expect(await tiers()).toEqual({ "iw-fast": 1, "iw-normal": 0, niw: 0 });
    const normal = await chat("normal");
    expect(normal.status).toBe(200);
    await normal.json();
    expect(await tiers()).toEqual({ "iw-fast": 1, "iw-normal": 1, niw: 0 });
  }, 30_000);
});
