import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DashboardActor } from "@sageserve/dashboard";
import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import {
  type AuthRole,
  generateNatsAuth,
  inboxPrefix,
  type NatsAuthFiles,
  NatsBus,
  type NatsServerHandle,
  permissionViolations,
  startNatsServer,
} from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { envelope, NodeCommand, Plan, PlanRequest, SageError, VmCommand } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const waitFor = async <T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 10_000) => {
  const until = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/**
 * NATS with per-role NKey credentials and permissions (the config `sageserve up` and compose run):
 * the real actors each on their own role do their jobs — a request through gateway → router → node
 * agent → engine, a batch job through JetStream to the region agent, KV, the services API — and what a
 * role must not do is refused by the server.
 */
describe("NATS authentication and per-role permissions", () => {
  let dir: string;
  let auth: NatsAuthFiles;
  let server: NatsServerHandle;
  let emu: EmulatorHandle;
  const clock = new WallClock({ seed: 9 });
  const buses: NatsBus[] = [];
  const as = async (role: AuthRole, name: string = role) => {
    const bus = await NatsBus.connect({
      servers: server.url,
      name,
      nkeySeedFile: auth.seeds[role],
      inboxPrefix: inboxPrefix(role),
    });
    buses.push(bus);
    return bus;
  };
  const actors: { stop(): Promise<void> }[] = [];
  let gateway: GatewayActor;
  let node: NodeAgentActor;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "sage-auth-"));
    auth = generateNatsAuth(dir);
    server = await startNatsServer({ config: auth.config });
    emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", speedup: 20 });
    node = new NodeAgentActor(
      { bus: await as("node-agent"), clock },
      {
        nodeId: "w1",
        region: "westus",
        gpuType: "h100",
        engine: { url: emu.url, kind: "vllm", model: "llama3.2-3b", kvCapacityTokens: 5_000_000 },
        loadReportMs: 200,
        heartbeatMs: 500,
      },
    );
    const router = new RouterActor(
      { bus: await as("router"), clock },
      { regions: ["westus"], models: ["llama3.2-3b"] },
    );
    const agent = new RegionAgentActor(
      { bus: await as("region-agent"), clock },
      {
        region: "westus",
        models: ["llama3.2-3b"],
        mode: "unified",
        gpuTypes: ["h100"],
        scalingIntervalMs: 200,
        statusIntervalMs: 300,
      },
    );
    gateway = new GatewayActor(
      { bus: await as("gateway"), clock },
      { region: "westus", models: ["llama3.2-3b"] },
    );
    const dashboard = new DashboardActor({ bus: await as("dashboard"), clock }, { port: 0 });
    for (const a of [router, node, agent, gateway, dashboard]) {
      await a.start();
      actors.push(a);
    }
    await waitFor("the node to serve", () => (node.currentState === "serving" ? true : undefined));
    await waitFor("the router to hear a load report", () =>
      router.routableInstances().length > 0 ? true : undefined,
    );
  }, 30_000);

  afterAll(async () => {
    for (const a of actors.reverse()) await a.stop().catch(() => {});
    for (const b of buses) await b.close().catch(() => {});
    await emu?.close();
    clock.cancelAll();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("writes one seed per role (mode 0600) and a server config that holds only public keys", () => {
    for (const f of Object.values(auth.seeds)) expect(statSync(f).mode & 0o777).toBe(0o600);
    const conf = readFileSync(auth.config, "utf8");
    expect(conf).toContain(auth.publicKeys.planner);
    expect(conf).not.toMatch(/\bSU[A-Z2-7]{20,}/); // no seed
    // Idempotent: a second run keeps the keys.
    expect(generateNatsAuth(dir).publicKeys).toEqual(auth.publicKeys);
  });

  it("lets each role do its job: an interactive request gateway → router → node agent → engine, and back", async () => {
    const r = await fetch(`${gateway.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "llama3.2-3b", prompt: "hello", max_tokens: 4 }),
    });
    expect(r.status, await r.clone().text()).toBe(200);
    expect(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(4);
  });

  it("lets a batch job go router → JetStream work queue → region agent → node agent", async () => {
    const r = await fetch(`${gateway.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-sage-tier": "batch" },
      body: JSON.stringify({ model: "llama3.2-3b", prompt: "later", max_tokens: 3 }),
    });
    expect(r.status).toBe(202);
    const job = (await r.json()) as { id: string };
    await waitFor("the batch job to complete", async () => {
      const s = await fetch(`${gateway.url}/v1/sage/jobs/${job.id}`).then(
        (x) => x.json() as Promise<{ status: string }>,
      );
      return s.status === "completed" ? s : undefined;
    });
  });

  it("lets the Batch API run on its roles: files in the object store (gateway), results stored by the node agent", async () => {
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "none", maxRetries: 0 });
    const line = (i: number) =>
      JSON.stringify({
        custom_id: `a${i}`,
        method: "POST",
        url: "/v1/completions",
        body: { model: "llama3.2-3b", prompt: `p${i}`, max_tokens: 3 },
      });
    const text = `${[0, 1, 2].map(line).join("\n")}\n`;
    const file = await client.files.create({
      file: await toFile(Buffer.from(text), "in.jsonl"),
      purpose: "batch",
    });
    expect(await (await client.files.content(file.id)).text()).toBe(text);
    const created = await client.batches.create({
      input_file_id: file.id,
      endpoint: "/v1/completions",
      completion_window: "24h",
    });
    const batch = await waitFor(
      "the batch to complete",
      async () => {
        const b = await client.batches.retrieve(created.id);
        return b.status === "completed" ? b : undefined;
      },
      20_000,
    );
    expect(batch.request_counts).toEqual({ total: 3, completed: 3, failed: 0 });
    const out = (await (await client.files.content(batch.output_file_id!)).text()).trim().split("\n");
    expect(out.map((l) => (JSON.parse(l) as { custom_id: string }).custom_id)).toEqual(["a0", "a1", "a2"]);
    expect((await client.files.list()).data.length).toBeGreaterThanOrEqual(2);
    expect(await client.files.delete(file.id)).toMatchObject({ deleted: true });
    expect(permissionViolations(server.log())).toEqual([]);
  });

  it("lets the admin command a node and the operator read KV, streams and the services API", async () => {
    const admin = await as("admin");
    const reply = await admin
      .request(
        NodeCommand.subject.build({ node: "no-such-node" }),
        envelope(NodeCommand, { commandId: "c1", action: "drain", reason: "test", issuedAtMs: Date.now() }),
        { timeoutMs: 1_000 },
      )
      .catch((e: SageError) => e);
    // Nobody is node "no-such-node": the publish went through (a denial would not say no responders).
    expect(reply).toBeInstanceOf(SageError);
    expect((reply as SageError).code).toBe("NO_RESPONDERS");
    const op = await as("operator");
    const nodes = await waitFor("a node in KV", async () => {
      const m = await op.kvEntries("sage-nodes");
      return m.size ? m : undefined;
    });
    expect([...nodes.keys()]).toContain("w1");
    expect((await op.kvEntries("sage-regions")).has("westus")).toBe(true);
    const services = await op.discover({ timeoutMs: 500 });
    expect(new Set(services.map((s) => s.name))).toEqual(
      new Set(["router", "node-agent", "region-agent", "gateway", "dashboard"]),
    );
    const jsm = await op.connection.jetstreamManager();
    expect((await jsm.streams.info("SAGE_NIW")).config.name).toBe("SAGE_NIW");
    // `nats sub 'sage.>'`
    const seen: string[] = [];
    const sub = op.subscribe("sage.>", (m) => void seen.push(m.subject));
    await waitFor("a load report seen by the operator", () =>
      seen.some((s) => s.startsWith("sage.load.")) ? true : undefined,
    );
    sub.unsubscribe();
    expect(op.errors).toEqual([]);
  });

  it("runs a service as a container does: `sageserve actor router` with a credentials directory holding only router.nk", async () => {
    const svc = mkdtempSync(join(tmpdir(), "sage-auth-svc-"));
    copyFileSync(auth.seeds.router, join(svc, "router.nk"));
    const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, "actor", "router"], {
      env: { ...process.env, NATS_URL: server.url, SAGE_NATS_CREDS: svc },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (out += c));
    const exited = new Promise<number>((r) => child.once("exit", (code) => r(code ?? -1)));
    try {
      await waitFor(`the router service to run (${out})`, () =>
        out.includes("router running") ? true : undefined,
      );
      const op = await as("operator", "operator-actor");
      const routers = await op.discover({ name: "router", timeoutMs: 500 });
      expect(routers.length).toBe(2); // the test's router and the CLI's
    } finally {
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      rmSync(svc, { recursive: true, force: true });
    }
    expect(out).not.toMatch(/violation|AUTH/i);
  });

  /** Publish `subject` as `role`; a planner-side listener must never see it and the publisher gets an AUTH error. */
  const refused = async (role: AuthRole, subject: string, payload: unknown) => {
    const listener = await as("operator", `listener-${role}`);
    const got: string[] = [];
    listener.subscribe(subject, (m) => void got.push(m.subject));
    await listener.flush();
    const bus = await as(role, `denied-${role}`);
    bus.publish(subject, payload);
    await bus.flush().catch(() => {});
    const err = await waitFor(`a permissions error on the ${role} connection`, () => bus.errors[0]);
    expect(err.code).toBe("AUTH");
    expect(err.message).toMatch(/permissions violation/i);
    expect(err.message).toContain(subject);
    // A message the server refused is delivered to nobody: flush a marker through the same server.
    await listener.flush();
    await clock.sleep(100);
    expect(got).toEqual([]);
    // The connection stays up for what the role may do.
    expect(bus.closed).toBe(false);
  };

  it("refuses a node agent publishing a plan", async () => {
    await refused("node-agent", Plan.subject.build({}), envelope(Plan, Plan.sample()));
  });

  it("refuses a gateway commanding a node or asking for VMs", async () => {
    const cmd = envelope(NodeCommand, {
      commandId: "x",
      action: "drain",
      reason: "evil",
      issuedAtMs: Date.now(),
    });
    await refused("gateway", NodeCommand.subject.build({ node: "w1" }), cmd);
    await refused(
      "gateway",
      VmCommand.subject.build({ region: "westus" }),
      envelope(VmCommand, VmCommand.sample()),
    );
    // As a request: refused at once with a typed error (not a timeout, not "no responders").
    const g = await as("gateway", "gateway-request");
    const e = await g
      .request(NodeCommand.subject.build({ node: "w1" }), cmd, { timeoutMs: 5_000 })
      .catch((x: SageError) => x);
    expect(e).toBeInstanceOf(SageError);
    expect((e as SageError).code).toBe("AUTH");
    expect(node.currentState).toBe("serving");
  });

  it("refuses the operator any publish: a plan request, a KV write", async () => {
    await refused(
      "operator",
      PlanRequest.subject.build({}),
      envelope(PlanRequest, { requestedBy: "op", reason: "x" }),
    );
    const op = await as("operator", "operator-kv");
    const e = await op.kvPut("sage-plans", "latest", { v: 1 }).catch((x: SageError) => x);
    expect(e).toBeInstanceOf(SageError);
  });

  it("refuses an operator subscription to another role's inbox of services requests ($SRV as a responder)", async () => {
    const op = await as("operator", "operator-srv");
    op.subscribe("sage.plan.request", () => {}); // reading is allowed…
    const before = op.errors.length;
    op.connection.subscribe("$SRV.PING.planner.fake"); // …answering service pings is not
    await op.flush().catch(() => {});
    await waitFor("a subscription permissions error", () => (op.errors.length > before ? true : undefined));
    expect(op.errors.at(-1)!.code).toBe("AUTH");
  });

  it("re-authenticates after the server restarts (a fresh nonce signed with the seed)", async () => {
    const first = await startNatsServer({ config: auth.config });
    const port = first.port;
    const url = first.url;
    const opts = { servers: url, inboxPrefix: inboxPrefix("operator") };
    const op = await NatsBus.connect({ ...opts, name: "re-op", nkeySeedFile: auth.seeds.operator });
    const planner = await NatsBus.connect({
      ...opts,
      name: "re-planner",
      nkeySeedFile: auth.seeds.planner,
      inboxPrefix: inboxPrefix("planner"),
    });
    let second: NatsServerHandle | undefined;
    try {
      await first.stop();
      second = await startNatsServer({ config: auth.config, port });
      const got: string[] = [];
      op.subscribe(Plan.subject.build({}), (m) => void got.push(m.subject));
      await waitFor("both clients back", async () => {
        planner.publish(Plan.subject.build({}), envelope(Plan, Plan.sample()));
        await planner.flush().catch(() => {});
        return got.length ? true : undefined;
      });
      expect(op.errors.filter((e) => e.code === "AUTH")).toEqual([]);
    } finally {
      await op.close();
      await planner.close();
      await second?.stop();
    }
  }, 30_000);

  it("rejects a client without credentials, or with a key the server does not know", async () => {
    const none = await NatsBus.connect({ servers: server.url, name: "anonymous" }).catch((e: SageError) => e);
    expect(none).toBeInstanceOf(SageError);
    expect((none as SageError).code).toBe("AUTH");
    expect((none as SageError).message).toMatch(/authorization/i);
    const other = mkdtempSync(join(tmpdir(), "sage-auth-other-"));
    try {
      const stranger = generateNatsAuth(other);
      const e = await NatsBus.connect({ servers: server.url, nkeySeedFile: stranger.seeds.planner }).catch(
        (x: SageError) => x,
      );
      expect((e as SageError).code).toBe("AUTH");
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    const bad = await NatsBus.connect({ servers: server.url, nkeySeedFile: join(dir, "missing.nk") }).catch(
      (x: SageError) => x,
    );
    expect((bad as SageError).code).toBe("AUTH");
    expect((bad as SageError).message).toMatch(/missing\.nk/);
  });
});

describe("NATS over TLS", () => {
  let dir: string;
  let auth: NatsAuthFiles;
  let server: NatsServerHandle;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "sage-tls-"));
    auth = generateNatsAuth(dir, { tls: true });
    server = await startNatsServer({ config: auth.config });
  }, 30_000);

  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("connects with the CA and a role's seed, and works", async () => {
    const bus = await NatsBus.connect({
      servers: server.url,
      nkeySeedFile: auth.seeds.operator,
      inboxPrefix: inboxPrefix("operator"),
      tls: { caFile: auth.tls!.caFile },
    });
    try {
      const jsm = await bus.connection.jetstreamManager();
      // The JetStream API answers over TLS with this seed: the account's stream count and its listing agree.
      const listed: string[] = [];
      for await (const si of jsm.streams.list()) listed.push(si.config.name);
      expect((await jsm.getAccountInfo()).streams).toBe(listed.length);
      expect(bus.connection.info?.tls_required).toBe(true);
    } finally {
      await bus.close();
    }
  });

  it("refuses plaintext when TLS is required, and a server certificate from an unknown CA", async () => {
    // A plaintext client (raw protocol): the server answers CONNECT with an error and hangs up.
    const said = await new Promise<string>((resolve, reject) => {
      const sock = createConnection({ host: "127.0.0.1", port: server.port });
      let text = "";
      sock.on("data", (c) => {
        text += c.toString();
        if (text.startsWith("INFO ") && text.includes("\r\n") && !text.includes("CONNECT-SENT")) {
          text += "CONNECT-SENT";
          sock.write('CONNECT {"verbose":false,"pedantic":false}\r\nPING\r\n');
        }
      });
      sock.on("close", () => resolve(text));
      sock.on("error", reject);
    });
    expect(said).toMatch(/"tls_required":true/);
    expect(said).not.toMatch(/PONG/);
    // The client without the CA does not trust the server's certificate.
    const untrusted = await NatsBus.connect({ servers: server.url, nkeySeedFile: auth.seeds.operator }).catch(
      (e: SageError) => e,
    );
    expect(untrusted).toBeInstanceOf(SageError);
    expect((untrusted as SageError).message).toMatch(/certificate/i);
    const other = mkdtempSync(join(tmpdir(), "sage-tls-other-"));
    try {
      const foreign = generateNatsAuth(other, { tls: true });
      const e = await NatsBus.connect({
        servers: server.url,
        nkeySeedFile: auth.seeds.operator,
        tls: { caFile: foreign.tls!.caFile },
      }).catch((x: SageError) => x);
      expect(e).toBeInstanceOf(SageError);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it("with --tls-verify (mutual TLS) needs the client certificate as well as the seed", async () => {
    const mdir = mkdtempSync(join(tmpdir(), "sage-mtls-"));
    const m = generateNatsAuth(mdir, { tls: true, tlsVerify: true });
    const mserver = await startNatsServer({ config: m.config });
    try {
      const tls = m.tls!;
      const ok = await NatsBus.connect({
        servers: mserver.url,
        nkeySeedFile: m.seeds.operator,
        tls: { caFile: tls.caFile, certFile: tls.clientCertFile!, keyFile: tls.clientKeyFile! },
      });
      await ok.flush();
      await ok.close();
      const noCert = await NatsBus.connect({
        servers: mserver.url,
        nkeySeedFile: m.seeds.operator,
        tls: { caFile: tls.caFile },
        // TLS 1.3 completes on the client before the server checks its certificate: the refusal
        // comes as a closed connection, so do not wait the default 20 s for it.
        connectTimeoutMs: 2_000,
      }).catch((e: SageError) => e);
      expect(noCert).toBeInstanceOf(SageError);
      const half = await NatsBus.connect({
        servers: mserver.url,
        tls: { caFile: tls.caFile, certFile: tls.clientCertFile! },
      }).catch((e: SageError) => e);
      expect((half as SageError).code).toBe("CONFIG");
    } finally {
      await mserver.stop();
      rmSync(mdir, { recursive: true, force: true });
    }
  });
});
