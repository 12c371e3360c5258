import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DEFAULT_CLUSTER } from "@sageserve/cli";
import { describe, expect, it } from "vitest";
import { startNats } from "./support/nats.js";

const run = promisify(execFile);
const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/** The README's main command, run as a user would (needs `npm run build`, which `npm test` does first). */
describe("sageserve CLI", () => {
  it("`demo` runs the spine actors over a real nats-server and lists them as services", async () => {
    const fx = await startNats();
    try {
      const { stdout } = await run(
        process.execPath,
        [bin, "demo", "--duration", "2", "--heartbeat-ms", "200"],
        {
          env: { ...process.env, NATS_URL: fx.url },
          timeout: 30_000,
        },
      );
      expect(stdout).toContain(`NATS at ${fx.url}`);
      expect(stdout).toMatch(/node n1\s+beat\s+seq=1/);
      expect(stdout).toMatch(/region\s+heartbeat\s+n2 seq=1/);
      for (const svc of ["auditor", "demo-region", "demo-node"]) expect(stdout).toContain(svc);
      expect(stdout).toMatch(/Heartbeat\s+\d+ \/ 0/);
    } finally {
      await fx.stop();
    }
  });

  it("`demo` spawns its own nats-server when NATS_URL is unset", async () => {
    const env = { ...process.env };
    delete env.NATS_URL;
    const { stdout } = await run(process.execPath, [bin, "demo", "-d", "1", "--heartbeat-ms", "200"], {
      env,
      timeout: 30_000,
    });
    expect(stdout).toContain("(spawned nats-server)");
    expect(stdout).toMatch(/demo-node\s+demo-node-n2/);
  });

  it("`demo --virtual --json` replays the same actors on virtual time, one JSON object per event", async () => {
    const { stdout } = await run(process.execPath, [bin, "demo", "--virtual", "-d", "30", "--json"], {
      timeout: 30_000,
    });
    const lines = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.filter((l) => l.event === "beat")).toHaveLength(2 * 60);
    const summary = lines.at(-1) as { audit: Record<string, { valid: number; rejected: number }> };
    expect(summary.audit.Heartbeat).toEqual({ valid: 120, rejected: 0 });
  });

  it("rejects a bad option with a clear message and a non-zero exit", async () => {
    const err = await run(process.execPath, [bin, "up", "--duration", "soon"]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(err).toMatchObject({ code: 1 });
    expect((err as { stderr: string }).stderr).toContain("expected a non-negative number, got 'soon'");
  });

  it("`up` names the bad field of a cluster file, and a port in use, with a non-zero exit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sage-cli-"));
    const file = join(dir, "cluster.json");
    const spec = JSON.parse(JSON.stringify(DEFAULT_CLUSTER)) as { regions: { models: string[] }[] };
    spec.regions[1]!.models = ["gpt-17"];
    writeFileSync(file, JSON.stringify(spec));
    const bad = await run(process.execPath, [bin, "up", "--cluster", file]).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(bad).toMatchObject({ code: 2 });
    expect((bad as { stderr: string }).stderr).toMatch(/regions\.1\.models\.0.*unknown model/);

    const taken = createServer();
    const port = await new Promise<number>((r) =>
      taken.listen(0, "127.0.0.1", () => r((taken.address() as AddressInfo).port)),
    );
    try {
      const env = { ...process.env };
      delete env.NATS_URL;
      const busy = await run(
        process.execPath,
        [
          bin,
          "up",
          "--no-load",
          "--gateway-port",
          String(port),
          "--dashboard-port",
          "0",
          "-d",
          "5",
          "--state-dir",
          dir,
        ],
        { env, timeout: 60_000 },
      ).catch((e: { code: number; stderr: string; stdout: string }) => e);
      expect(busy).toMatchObject({ code: 1 });
      expect((busy as { stderr: string }).stderr).toContain(
        `gateway: cannot listen on 127.0.0.1:${port}: already in use`,
      );
    } finally {
      taken.close();
    }
  }, 90_000);
});
