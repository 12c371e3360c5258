import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import {
  generateNatsAuth,
  type NatsAuthFiles,
  NatsBus,
  type NatsServerHandle,
  permissionViolations,
  type ScopedCredential,
  startNatsServer,
} from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { RegionAgentActor } from "@sageserve/region-agent";
import { WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "./support/procs.js";

/**
 * Issue 18: credentials per region and per host (`sageserve nats-auth --regions … --nodes …`). On a real
 * nats-server with the generated config: a node agent and a region agent run on their scoped credentials
 * without a single permission violation, and the server refuses a node agent publishing heartbeats or
 * load for another node (or listening to another node's requests), and a region agent commanding another
 * region's nodes or VMs.
 */
describe("NATS credentials scoped to a region and a host", () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-scoped-auth-"));
  let files: NatsAuthFiles;
  let server: NatsServerHandle;
  let emu: EmulatorHandle;
  const buses: NatsBus[] = [];
  const actors: { stop(): Promise<void> }[] = [];
  const clock = new WallClock({ seed: 18 });
  /** Every subject the read-only operator sees. */
  const seen: string[] = [];

  const as = async (c: ScopedCredential, name = c.name) => {
    const bus = await NatsBus.connect({
      servers: server.url,
      name,
      nkeySeedFile: c.seed,
      inboxPrefix: c.inboxPrefix,
    });
    buses.push(bus);
    return bus;
  };
  /** Publish `denied` and then `allowed` on one connection; once `allowed` arrives, `denied` would have too. */
  const attempt = async (bus: NatsBus, denied: string[], allowed: string) => {
    seen.length = 0;
    for (const s of denied) bus.publishRaw(s, new Uint8Array([0xc0]));
    bus.publishRaw(allowed, new Uint8Array([0xc0]));
    await bus.flush();
    expect(await until(() => seen.includes(allowed), 5_000)).toBe(true);
    for (const s of denied) expect(seen, s).not.toContain(s);
    // And the server logged each refusal, naming the connection (its log can trail the delivery).
    const refused = () =>
      permissionViolations(server.log())
        .filter((v) => v.connection === bus.name && v.kind === "publish")
        .map((v) => v.subject);
    await until(() => denied.every((s) => refused().includes(s)), 5_000);
    expect(refused()).toEqual(expect.arrayContaining(denied));
  };

  beforeAll(async () => {
    files = generateNatsAuth(dir, {
      regions: ["westus", "eastus"],
      nodes: [
        { node: "w1", region: "westus" },
        { node: "w2", region: "westus" },
        { node: "e1", region: "eastus" },
      ],
    });
    server = await startNatsServer({ config: files.config });
    const operator = await NatsBus.connect({
      servers: server.url,
      name: "operator",
      nkeySeedFile: files.seeds.operator,
      inboxPrefix: "_INBOX_operator",
    });
    buses.push(operator);
    operator.subscribe("sage.>", (m) => void seen.push(m.subject));
    await operator.flush();
  });

  afterAll(async () => {
    for (const a of actors.reverse()) await a.stop();
    for (const b of buses) await b.close();
    await emu?.close();
    clock.cancelAll();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("makes one credential per region agent, VM provider and host", () => {
    expect(Object.keys(files.scoped).sort()).toEqual([
      "node-agent.e1",
      "node-agent.w1",
      "node-agent.w2",
      "region-agent.eastus",
      "region-agent.westus",
      "vm-provider.eastus",
      "vm-provider.westus",
    ]);
  });

  it("runs a real node agent and region agent on their scoped credentials without a permission violation", async () => {
    emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", speedup: 50 });
    const node = new NodeAgentActor(
      { bus: await as(files.scoped["node-agent.w1"]!, "actor-node-w1"), clock },
      {
        nodeId: "w1",
        region: "westus",
        gpuType: "h100",
        engine: { url: emu.url, kind: "vllm", model: "llama3.2-3b", kvCapacityTokens: 1_000_000 },
        loadReportMs: 200,
        heartbeatMs: 300,
      },
    );
    const agent = new RegionAgentActor(
      { bus: await as(files.scoped["region-agent.westus"]!, "actor-region-westus"), clock },
      {
        region: "westus",
        models: ["llama3.2-3b"],
        mode: "unified",
        gpuTypes: ["h100"],
        scalingIntervalMs: 200,
      },
    );
    for (const a of [node, agent]) {
      await a.start();
      actors.push(a);
    }
    // Heartbeats, load reports and the region's status all flow; KV holds the node and the region.
    expect(
      await until(
        () =>
          seen.includes("sage.hb.westus.w1") &&
          seen.some((s) => /^sage\.load\.westus\.[^.]+\.w1-i0$/.test(s)) &&
          seen.includes("sage.region.westus.status"),
        15_000,
      ),
    ).toBe(true);
    expect(await until(() => node.currentState === "serving", 15_000)).toBe(true);
    const violations = permissionViolations(server.log()).filter((v) => v.connection.startsWith("actor-"));
    expect(violations).toEqual([]);
  }, 30_000);

  it("refuses a node agent publishing heartbeats or load for another node, or in another region", async () => {
    const w1 = await as(files.scoped["node-agent.w1"]!);
    await attempt(
      w1,
      [
        "sage.hb.westus.w2",
        "sage.load.westus.llama3~2e2-3b.w2-i0",
        "sage.hb.eastus.w1",
        "sage.state.westus.w2-i0",
      ],
      "sage.hb.westus.w1",
    );
  });

  it("refuses a node agent listening to another node's requests and commands", async () => {
    const w1 = await as(files.scoped["node-agent.w1"]!, "node-w1-listener");
    w1.subscribe("sage.node.w2.infer", () => {});
    w1.subscribe("sage.node.w2.cmd", () => {});
    await w1.flush();
    expect(
      await until(
        () =>
          permissionViolations(server.log()).filter(
            (v) => v.connection === "node-w1-listener" && v.kind === "subscribe",
          ).length === 2,
        5_000,
      ),
    ).toBe(true);
  });

  it("refuses a region agent commanding another region's nodes or VMs", async () => {
    const west = await as(files.scoped["region-agent.westus"]!);
    await attempt(
      west,
      ["sage.node.e1.cmd", "sage.vm.eastus.cmd", "sage.region.eastus.status"],
      "sage.node.w2.cmd",
    );
    const east = await as(files.scoped["region-agent.eastus"]!);
    await attempt(east, ["sage.node.w1.cmd", "sage.node.w2.cmd", "sage.vm.westus.cmd"], "sage.node.e1.cmd");
  });
});
