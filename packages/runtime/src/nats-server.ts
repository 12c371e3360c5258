import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SageError } from "@sageserve/protocol";

export interface NatsServerHandle {
  url: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  /** The server's recent log (last 64 KiB): permission violations show here. */
  log(): string;
  stop(): Promise<void>;
}

export function natsServerBinary(): string {
  return process.env.NATS_SERVER_BIN ?? "nats-server";
}

export function hasNatsServer(bin = natsServerBinary()): boolean {
  try {
    execFileSync(bin, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export const NATS_INSTALL_HINT = [
  "nats-server was not found. Install it with one of:",
  "  Debian/Ubuntu:  sudo apt-get install -y nats-server   (or: bash scripts/install-nats.sh)",
  "  macOS:          brew install nats-server",
  "  Docker:         docker run -p 4222:4222 nats:2.10 -js   and export NATS_URL=nats://127.0.0.1:4222",
  "or point NATS_URL at a running server.",
].join("\n");

/**
 * Spawn `nats-server -js` on a free loopback port with a temporary JetStream
 * store; resolves once it logs "Server is ready". `config` is a nats-server config file (e.g. the
 * authorization and TLS of `generateNatsAuth`); host, port and store given here override it. With
 * `storeDir` the store is that directory and outlives the server (`stop()` leaves it): a server started
 * again on the same port and directory is a restart, with its streams and KV.
 */
export async function startNatsServer(
  opts: {
    host?: string;
    port?: number;
    jetstream?: boolean;
    readyTimeoutMs?: number;
    storeDir?: string;
    config?: string;
  } = {},
): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  if (!hasNatsServer(bin)) throw new SageError("CONFIG", NATS_INSTALL_HINT);
  if (opts.config !== undefined && !existsSync(opts.config))
    throw new SageError("CONFIG", `nats-server config ${opts.config} does not exist`);
  const ownStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), "sage-nats-")));
  const args = [
    ...(opts.config ? ["-c", opts.config] : []),
    "-a",
    opts.host ?? "127.0.0.1",
    "-p",
    String(opts.port ?? -1),
  ];
  if (opts.jetstream ?? true) args.push("-js", "-sd", storeDir);
  // Its own process group: a terminal's Ctrl-C reaches the parent, which drains its clients before
  // stopping the server, instead of the server vanishing under them.
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  killWithParent(child);
  let log = "";
  const port = await new Promise<number>((resolve, reject) => {
    let found: number | undefined;
    const timer = setTimeout(
      () => reject(new SageError("CONFIG", `nats-server did not become ready:\n${log}`)),
      opts.readyTimeoutMs ?? 10_000,
    );
    const onData = (chunk: Buffer): void => {
      log += chunk.toString();
      if (log.length > 131_072) log = log.slice(-65_536);
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
      if (m) found = Number(m[1]);
      if (found !== undefined && log.includes("Server is ready")) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    child.stderr?.on("data", onData);
    child.stdout?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new SageError("CONFIG", `nats-server exited with code ${code}:\n${log}`));
    });
  });
  return {
    url: `nats://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    storeDir,
    process: child,
    log: () => log.slice(-65_536),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const killTimer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(killTimer);
      }
      if (ownStore) await rm(storeDir, { recursive: true, force: true });
    },
  };
}

export interface PermissionViolation {
  kind: "publish" | "subscribe";
  /** The client's connection name (`NatsBusOptions.name`). */
  connection: string;
  subject: string;
}

/** The permission violations in a nats-server log: who tried what where. */
export function permissionViolations(log: string): PermissionViolation[] {
  const out: PermissionViolation[] = [];
  const re = /"v[^":]*:[^":]*:([^"]*)" - (Publish|Subscription) Violation - .*?Subject "([^"]+)"/g;
  for (const m of log.matchAll(re))
    out.push({ kind: m[2] === "Publish" ? "publish" : "subscribe", connection: m[1]!, subject: m[3]! });
  return out;
}

/** The NATS server a local command runs on: `NATS_URL` if set, else a spawned `nats-server -js`. */
export async function natsFromEnvOrSpawn(
  env: string | undefined = process.env.NATS_URL,
): Promise<{ url: string; server?: NatsServerHandle }> {
  if (env) return { url: env };
  const server = await startNatsServer();
  return { url: server.url, server };
}

const children = new Set<ChildProcess>();
let listening = false;

/**
 * Never let `child` outlive this process, even when it crashes: one shared `exit` listener SIGKILLs
 * every registered child still running (a listener per child trips Node's max-listeners warning
 * in a cluster with a dozen engines).
 */
export function killWithParent(child: ChildProcess): void {
  if (!listening) {
    listening = true;
    process.once("exit", () => {
      for (const c of children) c.kill("SIGKILL");
    });
  }
  children.add(child);
  child.once("exit", () => children.delete(child));
}
