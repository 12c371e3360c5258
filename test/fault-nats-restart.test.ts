import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import { NatsBus, type NatsServerHandle, startNatsServer } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { NIW_STREAM, type Payload, Plan, RequestDone } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { connect } from "nats";
import { afterAll, describe, expect, it } from "vitest";
import { until } from "./support/procs.js";

/**
 * Issue 9, fault 3: the nats-server is SIGKILLed and started again on the same port with the same
 * JetStream store, while the region agent holds queued batch (NIW) jobs it cannot place yet. Every
 * actor reconnects by itself; the SAGE_NIW stream, its durable consumer and KV are intact; the jobs
 * queued before and after the restart all complete, each exactly once; interactive requests work again.
 */
// No skip without the binary: startNatsServer fails with the install hint, so a machine without
// nats-server fails this test instead of passing it silently (issue 19).
describe("fault: nats-server restart (same port, same store)", () => {
  let server: NatsServerHandle;
  let storeDir: string;
  let emu: EmulatorHandle;
  const clock = new WallClock({ seed: 23 });
  const buses: NatsBus[] = [];
  const statuses = new Map<string, string[]>();
  const actors: { stop(): Promise<void> }[] = [];

  afterAll(async () => {
    for (const a of actors.reverse()) await a.stop();
    for (const b of buses) await b.close();
    await emu?.close();
    clock.cancelAll();
    await server?.stop();
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  }, 30_000);

  it("reconnects every actor and loses no queued job", async () => {
    storeDir = await mkdtemp(join(tmpdir(), "sage-nats-restart-"));
    server = await startNatsServer({ storeDir });
    const port = server.port;
    const ctx = async (name: string) => {
      const seen: string[] = [];
      statuses.set(name, seen);
      const bus = await NatsBus.connect({ servers: server.url, name, onStatus: (s) => seen.push(s.type) });
      buses.push(bus);
      return { bus, clock };
    };
    const router = new RouterActor(await ctx("router"), { regions: ["westus"], models: ["llama3.2-3b"] });
    const gateway = new GatewayActor(await ctx("gateway"), { region: "westus", models: ["llama3.2-3b"] });
    const agent = new RegionAgentActor(await ctx("region-agent"), {
      region: "westus",
      models: ["llama3.2-3b"],
      mode: "unified",
      gpuTypes: ["h100"],
      scalingIntervalMs: 200,
      // Held jobs are kept alive with working() every third of this: across the outage too.
      niwAckWaitMs: 2_000,
    });
    for (const a of [router, gateway, agent]) {
      await a.start();
      actors.push(a);
    }
    const client = await ctx("client");
    const done: Payload<typeof RequestDone>[] = [];
    client.bus.subscribe(RequestDone.subject.pattern({ region: "westus" }), (m) => {
      const d = m.data();
      if (d.ok) done.push(d.value as Payload<typeof RequestDone>);
    });
    await client.bus.kvPut("sage-plans", "latest", { ...Plan.sample(), planId: "before-restart" });

    const post = (tier: string, body: Record<string, unknown>) =>
      fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-sage-tier": tier },
        body: JSON.stringify({ model: "llama3.2-3b", messages: [{ role: "user", content: "x" }], ...body }),
      });
    const submit = async (n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = await post("batch", { max_tokens: 3 });
        expect(r.status).toBe(202);
        ids.push(((await r.json()) as { id: string }).id);
      }
      return ids;
    };

    // 1. Twenty batch jobs queue; the region agent takes them but has no instance to release them to.
    const jobs = await submit(20);
    expect(await until(() => agent.queueDepth() === 20, 20_000)).toBe(true);

    // 2. The server dies hard and comes back on the same port with the same store.
    server.process.kill("SIGKILL");
    await new Promise<void>((r) => server.process.once("exit", () => r()));
    expect(await until(() => [...statuses.values()].every((s) => s.includes("disconnect")), 10_000)).toBe(
      true,
    );
    server = await startNatsServer({ port, storeDir });
    expect(await until(() => [...statuses.values()].every((s) => s.includes("reconnect")), 20_000)).toBe(
      true,
    );

    // 3. The stream still holds the twenty jobs (unacknowledged, held by the agent's durable consumer), and KV is intact.
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await nc.jetstreamManager();
      const si = await jsm.streams.info(NIW_STREAM.name);
      expect(si.state.messages).toBe(20);
      const ci = await jsm.consumers.info(NIW_STREAM.name, "niw-westus");
      expect(ci.num_ack_pending + ci.num_pending).toBe(20);
    } finally {
      await nc.close();
    }
    expect(await client.bus.kvGet("sage-plans", "latest")).toMatchObject({ planId: "before-restart" });

    // 4. Ten more jobs through the reconnected gateway and router; the agent (its consumer re-pulling) takes them too.
    jobs.push(...(await submit(10)));
    expect(await until(() => agent.queueDepth() === 30, 20_000)).toBe(true);

    // 5. A node comes up: every job completes, once.
    emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", speedup: 50 });
    const node = new NodeAgentActor(await ctx("node"), {
      nodeId: "w1",
      region: "westus",
      gpuType: "h100",
      engine: { url: emu.url, kind: "vllm", model: "llama3.2-3b", kvCapacityTokens: 5_000_000 },
      loadReportMs: 200,
      heartbeatMs: 500,
    });
    await node.start();
    actors.push(node);
    expect(await until(() => done.length >= 30, 40_000)).toBe(true);
    const ids = done.map((d) => d.requestId);
    expect(new Set(ids).size).toBe(30);
    expect(done.every((d) => d.tier === "niw" && d.outcome === "ok")).toBe(true);
    // The gateway's job view followed the outputs over the reconnected connection.
    for (const id of jobs) {
      const s = (await (await fetch(`${gateway.url}/v1/sage/jobs/${id}`)).json()) as { status: string };
      expect(s.status, id).toBe("completed");
    }
    // Interactive traffic flows again, streamed and not.
    const r = await post("fast", { max_tokens: 4 });
    expect(r.status).toBe(200);
    expect(((await r.json()) as { choices: { finish_reason: string }[] }).choices[0]!.finish_reason).toBe(
      "length",
    );
    // No late redelivery (ack wait 2 s) either, and the queue is empty.
    await clock.sleep(2_500);
    expect(done.filter((d) => d.tier === "niw")).toHaveLength(30);
    expect(agent.queueDepth()).toBe(0);
    const nc2 = await connect({ servers: server.url });
    try {
      expect((await (await nc2.jetstreamManager()).streams.info(NIW_STREAM.name)).state.messages).toBe(0);
    } finally {
      await nc2.close();
    }
  }, 85_000);
});
