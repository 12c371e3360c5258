import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/** `sageserve up --tls`: credentials and TLS on the spawned nats-server; the CLI reads it with the CA. */
describe("sageserve up --tls", () => {
  const state = mkdtempSync(join(tmpdir(), "sage-up-tls-"));
  let up: ChildProcess | undefined;
  afterAll(() => {
    if (up && up.exitCode === null) up.kill("SIGKILL");
    rmSync(state, { recursive: true, force: true });
  });

  it("serves with TLS required: `status` connects with the CA and the operator's seed, not without the CA", async () => {
    const env = { ...process.env, NATS_URL: "" };
    up = spawn(
      process.execPath,
      [
        bin,
        "up",
        "--json",
        "--no-load",
        "--tls",
        "--state-dir",
        state,
        "--gateway-port",
        "0",
        "--dashboard-port",
        "0",
      ],
      { stdio: ["ignore", "pipe", "pipe"], env },
    );
    const exit = new Promise<number>((r) => up!.once("exit", (code) => r(code ?? -1)));
    const events: Record<string, unknown>[] = [];
    createInterface({ input: up.stdout! }).on("line", (l) => {
      try {
        events.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        // text lines
      }
    });
    const until = Date.now() + 100_000;
    while (!events.some((e) => e.event === "ready")) {
      if (Date.now() > until || up.exitCode !== null)
        throw new Error(`no ready event: ${JSON.stringify(events)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const ready = events.find((e) => e.event === "ready")!;
    const ca = ready.ca as string;
    expect(ca).toBe(join(state, "nats-auth", "tls", "ca.pem"));
    expect(existsSync(ca)).toBe(true);
    const cli = { ...process.env, NATS_URL: ready.nats as string, SAGE_NATS_CREDS: ready.creds as string };
    const { stdout } = await exec(process.execPath, [bin, "status", "--json"], {
      env: { ...cli, NATS_CA: ca },
      timeout: 20_000,
    });
    const s = JSON.parse(stdout) as { regions: { region: string }[] };
    expect(s.regions.map((r) => r.region)).toEqual(["centralus", "eastus", "westus"]);
    const untrusted = await exec(process.execPath, [bin, "status"], { env: cli, timeout: 20_000 }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(untrusted).toMatchObject({ code: 2 });
    expect((untrusted as { stderr: string }).stderr).toMatch(/certificate/i);
    up.kill("SIGINT");
    expect(await exit).toBe(0);
    expect(events.filter((e) => e.event === "nats-violation")).toEqual([]);
  }, 150_000);
});
