import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PALETTE } from "@sageserve/charts";
import { connect, createInbox, type NatsConnection, nkeyAuthenticator } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { countColouredPixels, launchChromium } from "./support/browser.js";

const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

interface Event {
  event: string;
  [k: string]: unknown;
}

/** Processes whose parent is `pid` (ps), recursively. */
function descendants(pid: number): number[] {
  let out: string;
  try {
    out = execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" });
  } catch {
    return []; // ps exits 1 when there are none
  }
  const kids = out
    .split("\n")
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const run = (args: string[], env: Record<string, string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (c) => (stdout += c));
    p.stderr.on("data", (c) => (stderr += c));
    p.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });

/**
 * The README's first command, for real: `sageserve up` brings up the whole cluster (spawned
 * nats-server, dashboard, planner, router, 3 region agents with node agents and engine emulator
 * processes, gateway), the built-in workload flows through the gateway, the dashboard shows it in
 * headless Chromium, `status`/`drain` and the NATS inspection an operator does all work, and
 * Ctrl-C leaves no process behind.
 */
describe("sageserve up: a whole cluster on one machine", () => {
  let up: ChildProcess;
  const events: Event[] = [];
  let ready: Event;
  let natsUrl = "";
  let creds = "";
  /** What the CLI commands run with: the credentials `up` generated (status reads as operator, drain as admin). */
  let natsEnv: Record<string, string> = {};
  const stateDir = mkdtempSync(join(tmpdir(), "sage-up-state-"));
  let nc: NatsConnection;
  const children = new Set<number>();
  let exit: Promise<number>;

  const waitFor = async <T>(what: string, f: () => Promise<T | undefined> | T | undefined, ms: number) => {
    const until = Date.now() + ms;
    for (;;) {
      const v = await f();
      if (v !== undefined) return v;
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  };
  const state = async () => {
    const r = await fetch(`${ready.dashboard as string}/api/state`);
    return (await r.json()) as {
      tiers: Record<string, { completed: number; failed: number }>;
      points: unknown[];
      plan: unknown;
      regions: unknown[];
    };
  };

  beforeAll(async () => {
    up = spawn(
      process.execPath,
      // --duration: Ctrl-C must stop `up` at once, not when the duration runs out (issue 17, defect 5).
      [
        bin,
        "up",
        "--json",
        "--gateway-port",
        "0",
        "--dashboard-port",
        "0",
        "--state-dir",
        stateDir,
        "--duration",
        "3600",
      ],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NATS_URL: "" } },
    );
    exit = new Promise((r) => up.once("exit", (code, sig) => r(code ?? (sig ? 128 : -1))));
    let stderr = "";
    up.stderr!.on("data", (c) => (stderr += c));
    createInterface({ input: up.stdout! }).on("line", (l) => {
      try {
        events.push(JSON.parse(l) as Event);
      } catch {
        // plain lines are fine
      }
    });
    ready = await waitFor(
      `the 'ready' event (stderr: ${stderr.slice(-500)})`,
      () => events.find((e) => e.event === "ready"),
      150_000,
    );
    natsUrl = ready.nats as string;
    creds = ready.creds as string;
    natsEnv = { NATS_URL: natsUrl, SAGE_NATS_CREDS: creds };
    // The operator's read-only credentials, as `nats --nkey <creds>/operator.nk …` uses them.
    const seed = readFileSync(join(creds, "operator.nk"), "utf8").trim();
    nc = await connect({
      servers: natsUrl,
      name: "up-test-operator",
      inboxPrefix: "_INBOX_operator", // the operator's own reply inboxes (`nats --inbox-prefix`)
      authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)),
    });
    for (const pid of descendants(up.pid!)) children.add(pid);
  }, 180_000);

  afterAll(async () => {
    await nc?.close();
    if (up && up.exitCode === null) {
      up.kill("SIGKILL");
      for (const pid of children) if (alive(pid)) process.kill(pid, "SIGKILL");
    }
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("starts every service, a nats-server and an engine emulator process per serving instance", () => {
    const services = events.filter((e) => e.event === "service").map((e) => e.name);
    expect(services).toEqual([
      "dashboard",
      "planner",
      "router",
      "region-eastus",
      "region-centralus",
      "region-westus",
      "gateway",
    ]);
    const argvs = [...children].map((pid) =>
      execFileSync("ps", ["-ww", "-o", "args=", "-p", String(pid)], { encoding: "utf8" }).trim(),
    );
    expect(argvs.filter((a) => a.includes("nats-server"))).toHaveLength(1);
    // Two models in three regions: at least one engine each.
    expect(argvs.filter((a) => a.includes(" emulator ")).length, argvs.join("\n")).toBeGreaterThanOrEqual(6);
  });

  it("serves the built-in workload through the gateway: every tier completes requests", async () => {
    const s = await waitFor(
      "requests in every tier",
      async () => {
        const s = await state();
        return ["iw-fast", "iw-normal", "niw"].every((t) => (s.tiers[t]?.completed ?? 0) >= 3)
          ? s
          : undefined;
      },
      90_000,
    );
    expect(s.plan).not.toBeNull();
    expect(s.regions).toHaveLength(3);
    // A client of our own, as the README shows.
    const r = await fetch(`${ready.gateway as string}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-sage-region": "westus" },
      body: JSON.stringify({ model: "llama3.2-3b", prompt: "hello", max_tokens: 5 }),
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
    expect(body.usage.completion_tokens).toBe(5);
  }, 120_000);

  it("shows the traffic on the dashboard in headless Chromium: the charts draw data", async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1300 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(ready.dashboard as string);
      await page.waitForFunction(
        // Runs in the page; the test project has no DOM types.
        "Number(document.body.dataset.points) >= 5 && Number(document.body.dataset.finished) > 0",
        undefined,
        { timeout: 60_000 },
      );
      expect(errors).toEqual([]);
      expect(await page.locator("canvas").count()).toBe(6);
      const cards = await page.locator(".card").allInnerTexts();
      expect(cards.join(" ")).toMatch(/requests finished\s+[1-9]/);
      expect(cards.join(" ")).toMatch(/last 5 min: \d/);
      // Legends name the series and show no "--" placeholder values (issue 17).
      const legends = (await page.locator(".u-legend").allInnerTexts()).join(" ");
      expect(legends).toContain("iw-fast 5 min");
      expect(legends).not.toContain("--");
      const png = await page.screenshot({ fullPage: true });
      const dir = mkdtempSync(join(tmpdir(), "sage-dash-"));
      writeFileSync(join(dir, "dashboard.png"), png);
      // Chart lines in the series colours: thousands of pixels when the charts have data.
      expect(countColouredPixels(png, PALETTE.slice(0, 6))).toBeGreaterThan(3_000);
    } finally {
      await browser.close();
    }
  }, 120_000);

  it("answers what an operator inspects with the nats CLI: services ($SRV.PING/INFO), KV buckets, the NIW stream", async () => {
    const pings: { name: string; id: string }[] = [];
    const sub = nc.subscribe(createInbox("_INBOX_operator"));
    (async () => {
      for await (const m of sub) pings.push(m.json());
    })();
    nc.publish("$SRV.PING", new Uint8Array(), { reply: sub.getSubject() });
    await new Promise((r) => setTimeout(r, 1_000));
    sub.unsubscribe();
    const names = new Set(pings.map((p) => p.name));
    for (const n of [
      "dashboard",
      "planner",
      "router",
      "region-agent",
      "vm-provider",
      "node-agent",
      "gateway",
    ])
      expect(names, n).toContain(n);
    const info = await nc.request("$SRV.INFO.planner", new Uint8Array(), { timeout: 2_000 });
    const planner = info.json<{ name: string; endpoints: { subject: string }[] }>();
    expect(planner.endpoints.map((e) => e.subject)).toContain("sage.plan.request");
    const jsm = await nc.jetstreamManager();
    const streams: string[] = [];
    for await (const s of jsm.streams.list()) streams.push(s.config.name);
    for (const b of ["KV_sage-plans", "KV_sage-nodes", "KV_sage-regions", "KV_sage-observer", "SAGE_NIW"])
      expect(streams).toContain(b);
  });

  it("runs NATS with credentials by default: no anonymous client, the operator reads but cannot publish", async () => {
    expect(creds).toBe(join(stateDir, "nats-auth"));
    await expect(connect({ servers: natsUrl, reconnect: false })).rejects.toThrow(/authorization/i);
    const errors: string[] = [];
    (async () => {
      for await (const st of nc.status()) if (st.type === "error") errors.push(String(st.data));
    })();
    nc.publish("sage.plan.request", new Uint8Array());
    await nc.flush();
    await new Promise((r) => setTimeout(r, 200));
    expect(errors).toContain("PERMISSIONS_VIOLATION");
    // Without credentials the CLI is refused too, with a typed error.
    const anonymous = await run(["status"], { NATS_URL: natsUrl, SAGE_NATS_CREDS: "" });
    expect(anonymous.code).toBe(2);
    expect(anonymous.stderr).toMatch(/AUTH|authorization/i);
  });

  it("`sageserve status` reports regions, models, instances, the plan and SLO attainment from NATS", async () => {
    const r = await run(["status", "--json"], natsEnv);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as {
      regions: {
        region: string;
        endpoints: { model: string; instances: Record<string, number>; demandNeed?: number }[];
      }[];
      plan: { planId: string } | null;
      observer: { tiers: Record<string, { completed: number }> } | null;
      nodes: { nodeId: string }[];
    };
    expect(s.regions.map((x) => x.region)).toEqual(["centralus", "eastus", "westus"]);
    for (const reg of s.regions)
      expect(reg.endpoints.map((e) => e.model).sort()).toEqual(["llama3.1-8b", "llama3.2-3b"]);
    // The region agents count instances with the capacity model measured on these engines (as the
    // planner does): every endpoint says what its measured demand needs (0 until the routers' first
    // one-minute demand window closes, which this test does not wait for; agent.test.ts counts it).
    const needs = s.regions.flatMap((x) => x.endpoints.map((e) => e.demandNeed));
    expect(needs.length).toBe(6);
    for (const n of needs) expect(n).toBeGreaterThanOrEqual(0);
    expect(s.plan?.planId).toMatch(/^planner-1-p/);
    expect(s.observer?.tiers["iw-fast"]?.completed).toBeGreaterThan(0);
    expect(s.nodes.length).toBeGreaterThanOrEqual(6);
    const text = await run(["status"], natsEnv);
    expect(text.stdout).toMatch(/SLO attainment and latency/);
    expect(text.stdout).toMatch(/westus\s+llama3\.2-3b\s+.*serving/);
    expect(text.stdout).toMatch(/demand needs \d+/);
  }, 30_000);

  it("`sageserve drain <node>` drains a node; the region agent releases its VM and keeps the endpoint served", async () => {
    const before = JSON.parse((await run(["status", "--json"], natsEnv)).stdout) as {
      nodes: { nodeId: string; region: string; model: string; state: string }[];
    };
    const unknown = await run(["drain", "no-such-node"], natsEnv);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown node 'no-such-node'/);
    // A node the status saw serving may be lent to spot by now (its agent refuses then): try the next.
    let victim: (typeof before.nodes)[number] | undefined;
    for (const n of before.nodes.filter((x) => x.state === "serving")) {
      const d = await run(["drain", n.nodeId, "--json"], natsEnv);
      const reply = JSON.parse(d.stdout || "{}") as { accepted?: boolean; message?: string };
      expect(d.code === 0 || (d.code === 1 && reply.accepted === false), d.stderr).toBe(true);
      if (d.code === 0) {
        expect(reply).toMatchObject({ node: n.nodeId, accepted: true });
        victim = n;
        break;
      }
    }
    if (!victim) throw new Error("no serving node accepted a drain");
    const drained = victim;
    // The VM goes back to the provider (its liveness entry expires) and the endpoint still serves.
    await waitFor(
      "the drained node to be released and its endpoint served",
      async () => {
        const s = JSON.parse((await run(["status", "--json"], natsEnv)).stdout) as {
          nodes: { nodeId: string }[];
          regions: { region: string; endpoints: { model: string; instances: Record<string, number> }[] }[];
        };
        const gone = !s.nodes.some((n) => n.nodeId === drained.nodeId);
        const ep = s.regions
          .find((x) => x.region === drained.region)
          ?.endpoints.find((e) => e.model === drained.model);
        return gone && (ep?.instances.serving ?? 0) >= 1 ? true : undefined;
      },
      45_000,
    );
  }, 60_000);

  it("stops cleanly on Ctrl-C: exit code 0 and no process left behind", async () => {
    for (const pid of descendants(up.pid!)) children.add(pid);
    up.kill("SIGINT");
    const code = await Promise.race([exit, new Promise<number>((r) => setTimeout(() => r(-99), 40_000))]);
    expect(code).toBe(0);
    expect(events.at(-1)?.event).toBe("stopped");
    // Every actor stayed within its permissions: the server refused only this test's own attempt.
    const refused = events.filter((e) => e.event === "nats-violation");
    expect(refused.filter((e) => e.connection !== "up-test-operator")).toEqual([]);
    expect(refused).toContainEqual(
      expect.objectContaining({ kind: "publish", subject: "sage.plan.request" }),
    );
    await new Promise((r) => setTimeout(r, 500));
    expect([...children].filter(alive)).toEqual([]);
  }, 60_000);
});
