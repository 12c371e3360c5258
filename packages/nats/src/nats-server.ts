/**
 * One local `nats-server` process for tests, benchmarks and `sageserve up`: spawned on a free loopback
 * port with a JetStream store, ready once it says so, and stopped with its temporary files. Clusters of
 * them are in `nats-cluster.ts`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SageError } from "@sageserve/protocol";
import { killWithParent } from "@sageserve/runtime";

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

export interface NatsServerOptions {
  host?: string;
  port?: number;
  jetstream?: boolean;
  readyTimeoutMs?: number;
  storeDir?: string;
  config?: string;
  /** `server_name` (a JetStream cluster needs one per server). */
  name?: string;
  /** More nats-server config appended to `config` (a `cluster {}`, `gateway {}` or `leafnodes {}` block). */
  extraConfig?: string;
  /** The client port of the monitoring endpoint (`-m`), e.g. for `/varz` and `/routez`. */
  httpPort?: number;
}

/**
 * Spawn `nats-server -js` on a free loopback port with a temporary JetStream
 * store; resolves once it logs "Server is ready". `config` is a nats-server config file (e.g. the
 * authorization and TLS of `generateNatsAuth`); host, port and store given here override it. With
 * `storeDir` the store is that directory and outlives the server (`stop()` leaves it): a server started
 * again on the same port and directory is a restart, with its streams and KV.
 */
export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  if (!hasNatsServer(bin)) throw new SageError("CONFIG", NATS_INSTALL_HINT);
  if (opts.config !== undefined && !existsSync(opts.config))
    throw new SageError("CONFIG", `nats-server config ${opts.config} does not exist`);
  const ownStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), "sage-nats-")));
  const { config, configDir } = await serverConfig(opts);
  // Its own process group: a terminal's Ctrl-C reaches the parent, which drains its clients before
  // stopping the server, instead of the server vanishing under them.
  const child = spawn(bin, serverArgs(opts, config, storeDir), {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  killWithParent(child);
  const log = new ServerLog();
  const port = await readyPort(child, log, opts.readyTimeoutMs ?? 10_000);
  return {
    url: `nats://${opts.host ?? "127.0.0.1"}:${port}`,
    port,
    storeDir,
    process: child,
    log: () => log.recent(),
    stop: () => stopServer(child, ownStore ? storeDir : undefined, configDir),
  };
}

/**
 * The config file to run: `opts.config` as it is, or — with a name or extra blocks — one file of its
 * text plus them, in a temporary directory of its own (`configDir`, removed on stop).
 */
async function serverConfig(
  opts: NatsServerOptions,
): Promise<{ config: string | undefined; configDir: string | undefined }> {
  let config = opts.config;
  let configDir: string | undefined;
  if (opts.name !== undefined || opts.extraConfig !== undefined) {
    configDir = await mkdtemp(join(tmpdir(), "sage-nats-conf-"));
    config = join(configDir, "nats-server.conf");
    const base = opts.config ? readFileSync(opts.config, "utf8") : "";
    const name = opts.name !== undefined ? `server_name: ${JSON.stringify(opts.name)}\n` : "";
    await writeFile(config, `${base}\n${name}${opts.extraConfig ?? ""}\n`);
  }
  return { config, configDir };
}

/** The command line: config, loopback address and port, JetStream store, monitoring port. */
function serverArgs(opts: NatsServerOptions, config: string | undefined, storeDir: string): string[] {
  const args = [
    ...(config ? ["-c", config] : []),
    "-a",
    opts.host ?? "127.0.0.1",
    "-p",
    String(opts.port ?? -1),
  ];
  if (opts.jetstream ?? true) args.push("-js", "-sd", storeDir);
  if (opts.httpPort !== undefined) args.push("-m", String(opts.httpPort));
  return args;
}

/** The server's output, kept to its last 64 KiB once it passes 128 KiB. */
class ServerLog {
  text = "";

  append(chunk: Buffer): void {
    this.text += chunk.toString();
    if (this.text.length > 131_072) this.text = this.text.slice(-65_536);
  }

  /** The last 64 KiB. */
  recent(): string {
    return this.text.slice(-65_536);
  }
}

/** Resolves with the client port once the server logs "Server is ready"; rejects if it exits or times out. */
function readyPort(child: ChildProcess, log: ServerLog, readyTimeoutMs: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let found: number | undefined;
    const timer = setTimeout(
      () => reject(new SageError("CONFIG", `nats-server did not become ready:\n${log.text}`)),
      readyTimeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      log.append(chunk);
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log.text);
      if (m) found = Number(m[1]);
      if (found !== undefined && log.text.includes("Server is ready")) {
        clearTimeout(timer);
        resolve(found);
      }
    };
    child.stderr?.on("data", onData);
    child.stdout?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new SageError("CONFIG", `nats-server exited with code ${code}:\n${log.text}`));
    });
  });
}

/** SIGTERM (SIGKILL after 5 s) and wait for the exit; then remove an own store and a generated config. */
async function stopServer(
  child: ChildProcess,
  ownStoreDir: string | undefined,
  configDir: string | undefined,
): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill("SIGTERM");
    const killTimer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(killTimer);
  }
  if (ownStoreDir) await rm(ownStoreDir, { recursive: true, force: true });
  if (configDir) await rm(configDir, { recursive: true, force: true });
}

/** Resolves once `server`'s log matches `pattern` (or rejects after `timeoutMs`). */
export async function waitForLog(
  server: NatsServerHandle,
  pattern: RegExp,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(server.log())) {
    if (server.process.exitCode !== null || server.process.signalCode !== null)
      throw new SageError("CONFIG", `nats-server exited before logging ${pattern}:\n${server.log()}`);
    if (Date.now() > deadline)
      throw new SageError(
        "CONFIG",
        `nats-server did not log ${pattern} in ${timeoutMs} ms:\n${server.log()}`,
      );
    await new Promise((r) => setTimeout(r, 20));
  }
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
