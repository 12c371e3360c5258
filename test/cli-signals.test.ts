import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { freePort } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";

const root = new URL("..", import.meta.url).pathname;
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    // A zombie (exited, not yet reaped by an init that does not reap) is gone for our purposes.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
};
const until = async (what: string, cond: () => boolean | Promise<boolean>, ms: number) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/**
 * `npx sageserve …` runs as npm → sh -c → node. A SIGTERM to the npx process killed the shell and npm,
 * and left the SageServe process behind holding its port (issue 17, defect 10): it now stops when the
 * process that started it is gone.
 */
describe("signals through npx (needs `npm run build`)", () => {
  it("SIGTERM to the npx process stops SageServe too and frees its port", async () => {
    const port = await freePort();
    const npx = spawn(
      "npx",
      ["sageserve", "emulator", "--model", "llama3.2-3b", "--gpu", "h100", "--port", String(port)],
      { cwd: root, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    npx.stdout!.on("data", (c) => (out += c));
    await until(
      "the emulator serves",
      async () => {
        try {
          return (await fetch(`http://127.0.0.1:${port}/health`)).ok;
        } catch {
          return false;
        }
      },
      30_000,
    );
    const node = childrenOf(npx.pid!).flatMap((sh) => childrenOf(sh))[0];
    expect(node, `the process tree under npx (${out})`).toBeDefined();
    npx.kill("SIGTERM");
    await until("the SageServe process exits", () => !alive(node!), 10_000);
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  }, 60_000);
});
