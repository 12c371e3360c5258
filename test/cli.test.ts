import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { startNats } from "./support/nats.js";

const run = promisify(execFile);
const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/** The README's main command, run as a user would (needs `npm run build`, which `npm test` does first). */
describe("sageserve CLI", () => {
  it("`up` runs the actors over a real nats-server and lists them as services", async () => {
    const fx = await startNats();
    try {
      const { stdout } = await run(
        process.execPath,
        [bin, "up", "--duration", "2", "--heartbeat-ms", "200"],
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

  it("`up` spawns its own nats-server when NATS_URL is unset", async () => {
    const env = { ...process.env };
    delete env.NATS_URL;
    const { stdout } = await run(process.execPath, [bin, "up", "-d", "1", "--heartbeat-ms", "200"], {
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
});
