import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { until } from "./support/procs.js";

/**
 * Issue 18: `docker compose up` for real. The generated docker-compose.yml as it is — a nats-auth step, three
 * clustered nats-servers with JetStream and per-role NKeys, every SageServe service in its own container,
 * the load container replaying the built-in workload — on a Docker engine, with two test-only images made
 * here because no image registry is reachable (scripts/compose-test-images.sh: `sageserve:local` from the
 * host's built workspace, nats-server from the host on a debootstrap'ed Debian base; the NATS image swapped
 * by test/docker/compose.images.yml). Traffic through the gateway with the official OpenAI SDK, the
 * dashboard and `sageserve status` checked; then one NATS container SIGKILLed (clients fail over, batch jobs
 * still complete, the server rejoins) and one region container crashed (its traffic is served elsewhere,
 * compose's restart policy brings it back and it serves again). Everything torn down at the end.
 */
const root = new URL("..", import.meta.url).pathname;
const project = `sagetest${process.pid}`;
const files = ["-f", "docker-compose.yml", "-f", "test/docker/compose.images.yml"];
const SETUP_HINT =
  "run `bash scripts/setup.sh --with-test-tools` (installs docker.io and debootstrap, starts dockerd)";
/** Host ports docker-compose.yml publishes: gateway, dashboard, the three servers' client and monitoring ports. */
const HOST_PORTS = [8080, 8090, 4222, 4223, 4224, 8222, 8223, 8224];

function run(cmd: string, args: string[], timeoutMs = 120_000) {
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
function must(cmd: string, args: string[], timeoutMs?: number): string {
  const r = run(cmd, args, timeoutMs);
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${r.status}:\n${r.stderr.slice(-4000)}${r.stdout.slice(-2000)}`,
    );
  return r.stdout;
}
const compose = (args: string[], timeoutMs?: number) =>
  must("docker-compose", ["-p", project, ...files, ...args], timeoutMs);
const container = (service: string) => `${project}_${service}_1`;

/** `sageserve status --json`, run in a one-off container of the compose network with the operator's seed. */
function status(): {
  regions: {
    region: string;
    atMs: number;
    endpoints: { model: string; instances: Record<string, number> }[];
  }[];
  nodes: { nodeId: string; region: string; state: string; atMs: number }[];
  services: { name: string; id: string; metadata: Record<string, string> }[];
} {
  const out = compose([
    ...["run", "--rm", "--no-deps", "-T", "nats-auth", "status", "--json"],
    ...["--nats", "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222", "--nats-creds", "/secrets"],
  ]);
  return JSON.parse(out.slice(out.indexOf("{")));
}
const serving = (s: ReturnType<typeof status>, region: string) =>
  s.regions
    .find((r) => r.region === region)
    ?.endpoints.reduce((n, e) => n + (e.instances.serving ?? 0) + (e.instances.spot ?? 0), 0) ?? 0;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "0.0.0.0", () => s.close(() => resolve(true)));
  });
}

const REGIONS = ["westus", "eastus", "centralus"] as const;
const MODELS = ["llama3.2-3b", "llama3.1-8b"];

describe("docker compose up: the compose file on a Docker engine, under traffic and faults", () => {
  const client = new OpenAI({ baseURL: "http://127.0.0.1:8080/v1", apiKey: "sk-compose", maxRetries: 0 });
  let up = false;
  /** One chat completion per region and model (x-sage-region), counted. */
  const tally = { sent: 0, ok: 0 };
  const round = async (regions: readonly string[] = REGIONS) => {
    const answers = await Promise.all(
      regions.flatMap((region) =>
        MODELS.map(async (model) => {
          tally.sent++;
          const r = await client.chat.completions.create(
            { model, messages: [{ role: "user", content: `hello from ${region}` }], max_tokens: 8 },
            { headers: { "x-sage-region": region, "x-sage-tier": "fast" }, timeout: 60_000 },
          );
          tally.ok++;
          return r;
        }),
      ),
    );
    for (const a of answers) {
      expect(a.choices[0]!.message.content?.length).toBeGreaterThan(0);
      expect(a.usage?.completion_tokens).toBeGreaterThan(0);
    }
  };

  /** Probe each region and model until all answer (at most 60 s); how many probes failed on the way. */
  const failover = async (): Promise<number> => {
    let failed = 0;
    const pending = new Set(REGIONS.flatMap((region) => MODELS.map((model) => `${region}|${model}`)));
    const end = Date.now() + 60_000;
    while (pending.size > 0 && Date.now() < end) {
      await Promise.all(
        [...pending].map(async (key) => {
          const [region, model] = key.split("|") as [string, string];
          const ok = await client.chat.completions
            .create(
              { model, messages: [{ role: "user", content: `probe ${region}` }], max_tokens: 4 },
              { headers: { "x-sage-region": region, "x-sage-tier": "fast" }, timeout: 8_000 },
            )
            .then(
              () => true,
              () => false,
            );
          if (ok) pending.delete(key);
          else failed++;
        }),
      );
    }
    expect([...pending]).toEqual([]);
    return failed;
  };

  beforeAll(async () => {
    if (run("docker", ["info"], 30_000).status !== 0)
      throw new Error(`no Docker engine answers: ${SETUP_HINT}`);
    if (run("docker-compose", ["version"]).status !== 0)
      throw new Error(`docker-compose missing: ${SETUP_HINT}`);
    // Leftovers of an interrupted run of this project name, then the ports compose publishes.
    compose(["down", "-v", "--remove-orphans", "-t", "2"]);
    for (const p of HOST_PORTS)
      if (!(await portFree(p)))
        throw new Error(`host port ${p} is in use: docker-compose.yml publishes it (stop what holds it)`);
    must("bash", ["scripts/compose-test-images.sh"], 600_000);
    compose(["up", "-d", "--no-build"], 180_000);
    up = true;
    // Ready: the gateway lists both models and every region has its endpoints serving.
    let seen = "";
    const ready = await until(
      async () => {
        const models = await client.models.list({ timeout: 5_000 }).catch((e) => String(e));
        if (typeof models === "string" || models.data.length !== MODELS.length) {
          seen = `models: ${typeof models === "string" ? models : models.data.map((m) => m.id)}`;
          return false;
        }
        const s = status();
        seen = `serving: ${REGIONS.map((r) => `${r} ${serving(s, r)}`)}`;
        return REGIONS.every((r) => serving(s, r) >= MODELS.length);
      },
      180_000,
      2_000,
    );
    if (!ready) throw new Error(`compose did not become ready in 180 s (${seen}):\n${compose(["ps"])}`);
  }, 900_000);

  afterAll(async () => {
    if (up) {
      if (process.env.SAGE_COMPOSE_KEEP) return;
      compose(["down", "-v", "--remove-orphans", "-t", "5"], 180_000);
    }
  }, 240_000);

  it("serves chat through the gateway (OpenAI SDK, every region and model, streamed too); the dashboard and `sageserve status` see the cluster", async () => {
    await round();
    const stream = await client.chat.completions.create(
      { model: MODELS[0]!, messages: [{ role: "user", content: "stream" }], max_tokens: 16, stream: true },
      { headers: { "x-sage-tier": "fast" } },
    );
    let text = "";
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? "";
    expect(text.length).toBeGreaterThan(0);

    const page = await fetch("http://127.0.0.1:8090/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/text\/html/);
    const state = (await (await fetch("http://127.0.0.1:8090/api/state")).json()) as {
      tiers: Record<string, { completed: number }>;
      instances: Record<string, Record<string, Record<string, number>>>;
    };
    expect(Object.keys(state.instances).sort()).toEqual([...REGIONS].sort());
    expect(state.tiers["iw-fast"]!.completed).toBeGreaterThanOrEqual(REGIONS.length * MODELS.length);

    // A node's liveness is a KV entry that expires after 3 heartbeats: on a loaded machine one can lapse for a
    // moment and return with the next heartbeat (CI saw 5 of 6 once), so wait for every node, not one sample.
    let s = status();
    await until(
      () => {
        s = status();
        return s.nodes.length >= REGIONS.length * MODELS.length;
      },
      60_000,
      2_000,
    );
    expect(s.regions.map((r) => r.region).sort()).toEqual([...REGIONS].sort());
    expect(s.nodes.length).toBeGreaterThanOrEqual(REGIONS.length * MODELS.length);
    const names = new Set(s.services.map((x) => x.name));
    for (const n of [
      "gateway",
      "router",
      "planner",
      "dashboard",
      "region-agent",
      "node-agent",
      "vm-provider",
    ])
      expect(names, n).toContain(n);
    expect(s.services.filter((x) => x.name === "region-agent")).toHaveLength(REGIONS.length);
    // The load container replays the built-in workload through the gateway meanwhile.
    expect(compose(["logs", "--no-color", "load"])).toMatch(/sent \d+ · ok [1-9]\d* /);
  }, 120_000);

  it("one NATS container SIGKILLed: clients fail over, chat and batch jobs complete, and the server rejoins", async () => {
    must("docker", ["kill", "--signal", "KILL", container("nats-2")]);
    // Batch jobs (SAGE_NIW, 3 replicas) go on being accepted and run with one server of three gone.
    const jobs: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch("http://127.0.0.1:8080/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json", "x-sage-tier": "batch" },
        body: JSON.stringify({
          model: MODELS[i % 2],
          messages: [{ role: "user", content: `job ${i}` }],
          max_tokens: 8,
        }),
      });
      expect(r.status).toBe(202);
      jobs.push(((await r.json()) as { id: string }).id);
    }
    // Failover first: a request handed to a node in the moment its connection moves to another server
    // can be lost (the router's InferenceRequest is published at most once — the documented gap in
    // docs/reliability.md; fault-nats-cluster.test.ts measures it), and a client whose server died answers
    // 503 until it has reconnected. Probe every region and model with a short client timeout until each
    // answers; failed probes are counted and bounded (at most one per endpoint), then every request of
    // three full rounds must be answered.
    const probesFailed = await failover();
    console.info(
      `compose failover: ${probesFailed} probe request(s) unanswered or refused in the failover gap`,
    );
    expect(probesFailed).toBeLessThanOrEqual(REGIONS.length * MODELS.length);
    for (let i = 0; i < 3; i++) await round();
    const done = await until(
      async () => {
        const states = await Promise.all(
          jobs.map(async (id) => {
            const r = await fetch(`http://127.0.0.1:8080/v1/sage/jobs/${id}`);
            return ((await r.json()) as { status?: string }).status;
          }),
        );
        return states.every((x) => x === "completed");
      },
      120_000,
      1_000,
    );
    expect(done).toBe(true);
    expect(status().regions).toHaveLength(REGIONS.length); // status reaches the cluster with one server down
    must("docker", ["start", container("nats-2")]);
    // Back in the cluster and current: its /healthz (JetStream included) answers ok.
    const healthy = await until(
      async () => (await fetch("http://127.0.0.1:8223/healthz").catch(() => undefined))?.ok === true,
      60_000,
      500,
    );
    expect(healthy).toBe(true);
    await round();
  }, 240_000);

  it("a region container crashes: its traffic is served elsewhere, compose restarts it and it serves again", async () => {
    const name = container("region-eastus");
    const before = status().services.find(
      (x) => x.name === "region-agent" && x.metadata.region === "eastus",
    )!.id;
    const pid = Number(must("docker", ["inspect", "-f", "{{.State.Pid}}", name]).trim());
    const crashedAt = Date.now();
    // A crash, not `docker kill` (which Docker counts as a manual stop and never restarts): SIGKILL the
    // container's first process from the host; its node agents and engines die with its PID namespace.
    process.kill(pid, "SIGKILL");
    await round(["eastus"]);
    await round(["eastus"]);
    const back = await until(
      () => {
        const s = status();
        const agent = s.services.find((x) => x.name === "region-agent" && x.metadata.region === "eastus");
        const fresh = s.nodes.filter((n) => n.region === "eastus" && n.atMs > crashedAt);
        return agent !== undefined && agent.id !== before && fresh.length >= MODELS.length;
      },
      180_000,
      2_000,
    );
    expect(back).toBe(true);
    expect(
      Number(must("docker", ["inspect", "-f", "{{.RestartCount}}", name]).trim()),
    ).toBeGreaterThanOrEqual(1);
    await round(["eastus"]);
    expect(tally.ok).toBe(tally.sent);
    const load = compose(["logs", "--no-color", "--tail", "1", "load"]).trim().split("\n").at(-1);
    console.info(
      `compose: ${tally.sent} chat completions through the faults, ${tally.ok} answered 200; load container: ${load}`,
    );
  }, 240_000);
});
