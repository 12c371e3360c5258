import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clusterServices, DEFAULT_CLUSTER, renderCompose, SERVICE_AUTH_ROLES } from "@sageserve/cli";
import { startNatsServer } from "@sageserve/nats";
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

  it("runs NATS with credentials: the nats-auth step gives nats-server the config and each service only its roles' seeds", async () => {
    const yml = readFileSync(composePath, "utf8");
    // Three clustered servers, each client holding all three URLs (JetStream assets then get 3 replicas).
    for (const h of ["nats-1", "nats-2", "nats-3"]) {
      const block = new RegExp(`\n  ${h}:\n[\\s\\S]*?\n    command:\n((?: {6}- .*\n)+)`).exec(yml);
      const args = block![1]!
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l.replace(/^ {6}- /, "")) as string);
      expect(args).toEqual([
        ...["-c", "/conf/nats-server.conf", "-js", "-sd", "/data", "-m", "8222", "-n", h],
        ...["--cluster_name", "sage", "--cluster", "nats://0.0.0.0:6222"],
        ...["--routes", "nats-route://nats-1:6222,nats-route://nats-2:6222,nats-route://nats-3:6222"],
      ]);
    }
    expect(yml).toContain("NATS_URL: nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222");
    expect(yml).toContain("condition: service_completed_successfully");
    for (const s of clusterServices(DEFAULT_CLUSTER)) expect(yml).toContain(`- creds-${s.name}:/creds:ro`);
    // Run the nats-auth step's command here, its volumes as directories.
    const args = JSON.parse(/ {2}nats-auth:[\s\S]*?\n {4}command: (\[.*\])/.exec(yml)![1]!) as string[];
    const dir = mkdtempSync(join(tmpdir(), "sage-compose-auth-"));
    const local = args.map((a) => (/^\/(secrets|conf|creds)$/.test(a) ? join(dir, a) : a));
    const r = spawnSync(process.execPath, [join(root, "packages/cli/bin/sageserve.js"), ...local], {
      encoding: "utf8",
    });
    expect(r.status, r.stderr).toBe(0);
    for (const s of clusterServices(DEFAULT_CLUSTER))
      expect(readdirSync(join(dir, "creds", s.name)).sort()).toEqual(
        SERVICE_AUTH_ROLES[s.role].map((role) => `${role}.nk`).sort(),
      );
    expect(readdirSync(join(dir, "conf"))).toEqual(["nats-server.conf"]);
    const conf = readFileSync(join(dir, "conf", "nats-server.conf"), "utf8");
    expect(conf).toMatch(/authorization \{/);
    expect(conf).not.toMatch(/\bSU[A-Z2-7]{20,}/); // public keys only
    const server = await startNatsServer({ config: join(dir, "conf", "nats-server.conf") });
    await server.stop();
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
