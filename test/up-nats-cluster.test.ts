import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { connect, nkeyAuthenticator } from "nats";
import { afterAll, describe, expect, it } from "vitest";

const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/** nats-server processes whose parent is `pid`. */
function natsChildren(pid: number): number[] {
  try {
    return execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(pid)], { encoding: "utf8" })
      .split("\n")
      .filter((l) => l.includes("nats-server"))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
  } catch {
    return [];
  }
}

/**
 * `sageserve up --nats-cluster 3` (issue 18): three clustered nats-servers on loopback, every service
 * connected with all three URLs, SAGE_NIW and the KV buckets with 3 replicas; the cluster serves, and
 * Ctrl-C stops all three servers.
 */
describe("sageserve up --nats-cluster 3", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "sage-up-cluster-"));
  let up: ChildProcess | undefined;
  afterAll(() => {
    if (up && up.exitCode === null) up.kill("SIGKILL");
    rmSync(stateDir, { recursive: true, force: true });
  });

  it("runs the cluster on three clustered nats-servers with R3 JetStream assets", async () => {
    const env = { ...process.env };
    delete env.NATS_URL;
    up = spawn(
      process.execPath,
      [
        bin,
        "up",
        "--nats-cluster",
        "3",
        "--json",
        "--rate",
        "4",
        "--gateway-port",
        "0",
        "--dashboard-port",
        "0",
      ],
      { env: { ...env, SAGE_LOG_LEVEL: "warn" }, cwd: stateDir, stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    up.stderr!.on("data", (c) => (stderr += c));
    const events: Record<string, unknown>[] = [];
    const lines = createInterface({ input: up.stdout! });
    const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
      lines.on("line", (l) => {
        if (!l.startsWith("{")) return;
        const e = JSON.parse(l) as Record<string, unknown>;
        events.push(e);
        if (e.event === "ready") resolve(e);
      });
      up!.once("exit", (code) => reject(new Error(`up exited ${code}: ${stderr}`)));
    });
    await ready;
    const nats = events.find((e) => e.event === "nats")!;
    expect(nats.servers).toBe(3);
    const urls = String(nats.url).split(",");
    expect(urls).toHaveLength(3);
    expect(natsChildren(up.pid!)).toHaveLength(3);

    const creds = String(nats.creds);
    const seed = readFileSync(join(creds, "operator.nk"), "utf8").trim();
    const nc = await connect({
      servers: urls,
      authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)),
      inboxPrefix: "_INBOX_operator",
    });
    try {
      expect(nc.info?.cluster).toBe("sage");
      const jsm = await nc.jetstreamManager();
      // Wait for the load to queue a batch job (SAGE_NIW exists once one is queued) and for the KV writes.
      const deadline = Date.now() + 60_000;
      const replicas = async (stream: string) =>
        (await jsm.streams.info(stream).catch(() => undefined))?.config.num_replicas;
      const want = ["SAGE_NIW", "KV_sage-plans", "KV_sage-regions", "KV_sage-nodes"];
      while (Date.now() < deadline && (await Promise.all(want.map(replicas))).some((r) => r === undefined))
        await new Promise((r) => setTimeout(r, 250));
      for (const s of want) expect(await replicas(s), s).toBe(3);
      // Every replica current: the stream lives on all three servers.
      const info = await jsm.streams.info("KV_sage-regions");
      expect([info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)].sort()).toEqual([
        "sage-1",
        "sage-2",
        "sage-3",
      ]);
    } finally {
      await nc.close();
    }
    // Traffic flowed through the gateway on the cluster.
    while (!events.some((e) => e.event === "load" && Number(e.ok) > 0)) {
      if (up.exitCode !== null) throw new Error(stderr);
      await new Promise((r) => setTimeout(r, 250));
    }
    const pids = natsChildren(up.pid!);
    const exited = new Promise<number | null>((r) => up!.once("exit", (code) => r(code)));
    up.kill("SIGINT");
    expect(await exited).toBe(0);
    const stopped = events.find((e) => e.event === "stopped") as { load: { failed: number; ok: number } };
    expect(stopped.load.ok).toBeGreaterThan(0);
    expect(stopped.load.failed).toBe(0);
    for (const p of pids) expect(() => process.kill(p, 0)).toThrow();
  }, 150_000);
});
