import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clusterServices, DEFAULT_CLUSTER, renderCompose } from "@sageserve/cli";
import { describe, expect, it } from "vitest";

const root = new URL("..", import.meta.url).pathname;
const composePath = join(root, "docker-compose.yml");

/** Debian's docker-compose validates a file without a Docker engine (`config -q`). */
function composeConfig(file: string): { status: number | null; stderr: string } {
  const r = spawnSync("docker-compose", ["-f", file, "config", "-q"], { encoding: "utf8", cwd: root });
  if (r.error)
    throw new Error(
      `docker-compose is needed to validate docker-compose.yml: run \`bash scripts/setup.sh --with-test-tools\` (apt: docker-compose). ${r.error.message}`,
    );
  return { status: r.status, stderr: r.stderr };
}

describe("docker-compose.yml", () => {
  it("is generated from the cluster description `sageserve up` starts, and up to date (npm run compose)", () => {
    expect(readFileSync(composePath, "utf8")).toBe(renderCompose(DEFAULT_CLUSTER));
    const yml = readFileSync(composePath, "utf8");
    for (const s of clusterServices(DEFAULT_CLUSTER)) {
      expect(yml).toContain(`\n  ${s.name}:\n`);
      expect(yml).toContain(`command: ["actor", "${s.name}"`);
    }
  });

  it("validates with docker-compose config", () => {
    const r = composeConfig(composePath);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it("the validator catches a broken file (so the check above means something)", () => {
    const dir = mkdtempSync(join(tmpdir(), "sage-compose-"));
    const bad = join(dir, "docker-compose.yml");
    writeFileSync(bad, readFileSync(composePath, "utf8").replace('"4222:4222"', "{ not: a port }"));
    const r = composeConfig(bad);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ports/);
  });
});
