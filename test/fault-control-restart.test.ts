import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GatewayActor } from "@sageserve/gateway";
import { NatsBus } from "@sageserve/nats";
import {
  envelope,
  LoadReport,
  type Payload,
  PlanRequest,
  VmCommand,
  validateReply,
} from "@sageserve/protocol";
import { type Bus, WallClock } from "@sageserve/runtime";
import { LocalProcessBackend, VmProviderActor } from "@sageserve/vm-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";
import { emulatorCommand, until } from "./support/procs.js";

const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/**
 * Issue 9, fault 2: the region agent, the router and the planner, each a `sageserve actor` process,
 * SIGKILLed and started again over a real nats-server. The VM provider runs here (a cloud provider
 * outlives a region agent): its "VMs" take 8 s to boot, silent meanwhile, so a restarted region agent
 * only knows of them from what its predecessor stored in NATS KV — and must not boot them again.
 */
describe("fault: region agent, router and planner processes killed and restarted", () => {
  let fx: NatsFixture;
  let dir: string;
  let clusterFile: string;
  const clock = new WallClock({ seed: 29 });
  const buses: Bus[] = [];
  const procs = new Set<ChildProcess>();
  let backend: LocalProcessBackend;
  let provider: VmProviderActor;
  let gateway: GatewayActor;
  let client: Bus;
  const vmLog: Payload<typeof VmCommand>[] = [];
  const loads = new Map<string, Payload<typeof LoadReport>>();
  const connect = async (name: string) => {
    const b = await NatsBus.connect({ servers: fx.url, name });
    buses.push(b);
    return b;
  };
  /** `sageserve actor <service>`; resolves once it says it runs. */
  const actor = async (service: string): Promise<ChildProcess> => {
    const p = spawn(process.execPath, [bin, "actor", service, "--cluster", clusterFile], {
      env: { ...process.env, NATS_URL: fx.url, SAGE_LOG_LEVEL: "error" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    procs.add(p);
    p.once("exit", () => procs.delete(p));
    await new Promise<void>((resolve, reject) => {
      let out = "";
      p.stdout!.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("running on")) resolve();
      });
      p.once("exit", (code) => reject(new Error(`${service} exited (${code}) before running: ${out}`)));
    });
    return p;
  };
  const kill = async (p: ChildProcess) => {
    const gone = new Promise<void>((r) => p.once("exit", () => r()));
    p.kill("SIGKILL");
    await gone;
  };
  const boots = () => vmLog.filter((c) => c.action === "boot");
  const servingNodes = () =>
    [...loads.values()]
      .filter((l) => l.state === "serving" && Date.now() - l.atMs < 2_000)
      .map((l) => l.nodeId);

  beforeAll(async () => {
    fx = await startNats();
    dir = mkdtempSync(join(tmpdir(), "sage-fault-restart-"));
    clusterFile = join(dir, "cluster.json");
    writeFileSync(
      clusterFile,
      JSON.stringify({
        regions: [
          { id: "westus", models: ["llama3.2-3b"], gpuTypes: ["h100"], maxVms: 4, vmProvider: "external" },
        ],
        gateway: { port: 0 },
        dashboard: { port: 0 },
        planner: { schedule: "0 0 1 1 *", strategy: "lt-ua" },
        // Purely reactive, two instances at least; a boot's cool-down (60 s) far longer than the test,
        // so only a lost memory of the boots in flight could make a region agent boot again.
        regionAgent: {
          mode: "unified",
          planStrategy: "none",
          minInstances: 2,
          scalingIntervalMs: 300,
          cooldownMs: 60_000,
        },
        engine: { speedup: 20, kvTokens: 200_000, loadReportMs: 250, heartbeatMs: 500 },
        load: { ratePerSecond: 0, burstCv: 1, maxInputTokens: 100, maxOutputTokens: 10, seed: 1 },
      }),
    );
    backend = new LocalProcessBackend({
      connect,
      clock,
      engineCommand: emulatorCommand(20),
      maxVms: 4,
      loadReportMs: 250,
      heartbeatMs: 500,
      kvCapacityTokens: 200_000,
      bootDelayMs: 8_000,
    });
    provider = new VmProviderActor({ bus: await connect("vm-provider"), clock }, "westus", backend);
    await provider.start();
    client = await connect("watcher");
    client.subscribe(VmCommand.subject.build({ region: "westus" }), (m) => {
      const d = m.data();
      if (d.ok) vmLog.push(d.value as Payload<typeof VmCommand>);
    });
    client.subscribe(LoadReport.subject.pattern({ region: "westus" }), (m) => {
      const d = m.data();
      if (d.ok)
        loads.set((d.value as Payload<typeof LoadReport>).nodeId, d.value as Payload<typeof LoadReport>);
    });
    await client.flush();
    gateway = new GatewayActor(
      { bus: await connect("gateway"), clock },
      { region: "westus", models: ["llama3.2-3b"] },
    );
    await gateway.start();
  }, 30_000);

  afterAll(async () => {
    for (const p of procs) await kill(p);
    await gateway?.stop();
    await provider?.stop();
    await backend?.releaseAll();
    for (const b of buses) await b.close();
    clock.cancelAll();
    await fx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 30_000);

  it("a region agent restarted while its VMs boot does not boot them again", async () => {
    let agent = await actor("region-westus");
    // It boots what the region lacks (two instances); the VMs take 8 s and say nothing meanwhile.
    expect(await until(() => boots().length >= 2, 15_000)).toBe(true);
    const booted = boots().length;
    // Once the provider has accepted them, the agent records them in KV (what its successor reads).
    const recorded = async () =>
      ((await client.kvGet("sage-boots", "westus")) as { boots?: unknown[] } | undefined)?.boots?.length ?? 0;
    expect(await until(async () => (await recorded()) === booted, 10_000)).toBe(true);
    await kill(agent);
    expect(servingNodes()).toHaveLength(0);
    agent = await actor("region-westus");
    // The VMs arrive and serve; the new agent has been ticking all along (every 300 ms).
    expect(await until(() => servingNodes().length === booted, 30_000)).toBe(true);
    await clock.sleep(1_500);
    expect(boots()).toHaveLength(booted);
    expect(provider.booted).toBe(booted);
    // Command ids stay unique across the restart (a provider may deduplicate by them).
    expect(new Set(vmLog.map((c) => c.commandId)).size).toBe(vmLog.length);
  }, 60_000);

  it("a restarted router routes again; while it is down the gateway answers a typed 503", async () => {
    const ask = () =>
      fetch(`${gateway.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "llama3.2-3b", prompt: "x", max_tokens: 3 }),
      });
    let router = await actor("router");
    expect(await until(async () => (await ask()).status === 200, 15_000, 250)).toBe(true);
    await kill(router);
    const down = await ask();
    expect(down.status).toBe(503);
    expect(((await down.json()) as { error: { code: string } }).error.code).toBe("overloaded");
    router = await actor("router");
    // Its view comes back from the nodes' load reports within a report interval.
    expect(await until(async () => (await ask()).status === 200, 15_000, 250)).toBe(true);
    const r = await ask();
    expect(r.status).toBe(200);
    expect(((await r.json()) as { choices: { finish_reason: string }[] }).choices[0]!.finish_reason).toBe(
      "length",
    );
  }, 60_000);

  it("a restarted planner continues the plan sequence it left in KV", async () => {
    const replan = async () => {
      const m = await client.request(
        PlanRequest.subject.build({}),
        envelope(PlanRequest, { reason: "test", requestedBy: "fault-test" }),
        { timeoutMs: 20_000 },
      );
      const d = m.data();
      const r = d.ok ? validateReply(PlanRequest, d.value) : d;
      if (!r.ok) throw r.error;
      return r.value.planId;
    };
    let planner = await actor("planner");
    const first = await replan();
    expect(((await client.kvGet("sage-plans", "latest")) as { planId: string }).planId).toBe(first);
    await kill(planner);
    planner = await actor("planner");
    const second = await replan();
    expect(second).not.toBe(first);
    expect(((await client.kvGet("sage-plans", "latest")) as { planId: string }).planId).toBe(second);
  }, 60_000);
});
