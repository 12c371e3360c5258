import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SageError } from "@sageserve/protocol";
import { freePorts } from "./net.js";

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
    /** `server_name` (a JetStream cluster needs one per server). */
    name?: string;
    /** More nats-server config appended to `config` (a `cluster {}`, `gateway {}` or `leafnodes {}` block). */
    extraConfig?: string;
    /** The client port of the monitoring endpoint (`-m`), e.g. for `/varz` and `/routez`. */
    httpPort?: number;
  } = {},
): Promise<NatsServerHandle> {
  const bin = natsServerBinary();
  if (!hasNatsServer(bin)) throw new SageError("CONFIG", NATS_INSTALL_HINT);
  if (opts.config !== undefined && !existsSync(opts.config))
    throw new SageError("CONFIG", `nats-server config ${opts.config} does not exist`);
  const ownStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? (await mkdtemp(join(tmpdir(), "sage-nats-")));
  // A name or extra blocks: one config file of the given config's text plus them, beside the store.
  let config = opts.config;
  let configDir: string | undefined;
  if (opts.name !== undefined || opts.extraConfig !== undefined) {
    configDir = await mkdtemp(join(tmpdir(), "sage-nats-conf-"));
    config = join(configDir, "nats-server.conf");
    const base = opts.config ? readFileSync(opts.config, "utf8") : "";
    const name = opts.name !== undefined ? `server_name: ${JSON.stringify(opts.name)}\n` : "";
    await writeFile(config, `${base}\n${name}${opts.extraConfig ?? ""}\n`);
  }
  const args = [
    ...(config ? ["-c", config] : []),
    "-a",
    opts.host ?? "127.0.0.1",
    "-p",
    String(opts.port ?? -1),
  ];
  if (opts.jetstream ?? true) args.push("-js", "-sd", storeDir);
  if (opts.httpPort !== undefined) args.push("-m", String(opts.httpPort));
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
      if (configDir) await rm(configDir, { recursive: true, force: true });
    },
  };
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

/** A JetStream server has joined its cluster's meta group once it knows the metadata leader. */
export const JS_CLUSTER_READY =
  /JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader/;

/** How long a cluster server may take to join the JetStream meta group before it is restarted. */
const JOIN_WAIT_MS = 8_000;
const JOIN_RESTARTS = 2;

export interface NatsClusterHandle {
  /** The cluster's name (`cluster { name }`; a supercluster's gateway name too). */
  name: string;
  /** The servers, in order; `restart(i)` replaces entry i. */
  readonly servers: NatsServerHandle[];
  /** Every server's client URL. */
  urls: string[];
  /** The URLs comma-joined: what `NATS_URL` and `NatsBus.connect` take. */
  url: string;
  /** Each server's route port (`cluster { listen }`). */
  routePorts: number[];
  /** Kill server i (SIGKILL by default) and wait until it is gone; its store stays. */
  kill(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** Start server i again on its ports and store; resolves once it is back in the JetStream cluster. */
  restart(i: number): Promise<NatsServerHandle>;
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  /** Servers in the cluster (default 3). */
  size?: number;
  /** Cluster name (default `sage`). */
  name?: string;
  host?: string;
  /** A config every server includes: the authorization and TLS of `generateNatsAuth`. */
  config?: string;
  /** More config per server (server index → text): a `gateway {}` or `leafnodes {}` block. */
  extraConfig?: (index: number) => string;
  /** Server names (default `<name>-<i+1>`). */
  serverName?: (index: number) => string;
  jetstream?: boolean;
  readyTimeoutMs?: number;
}

/**
 * A cluster of `size` `nats-server -js` processes on loopback: free client and route ports, a store
 * each (under one temp dir, removed by `stop()`), every server routing to every other. Resolves once
 * every server is ready and, with JetStream, has joined the JetStream meta group.
 */
export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsClusterHandle> {
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1)
    throw new SageError("CONFIG", `a NATS cluster needs at least one server, not ${size}`);
  const name = opts.name ?? "sage";
  const host = opts.host ?? "127.0.0.1";
  const jetstream = opts.jetstream ?? true;
  const root = await mkdtemp(join(tmpdir(), `sage-nats-${name}-`));
  const ports = await freePorts(2 * size, host);
  const routePorts = ports.slice(0, size);
  const clientPorts = ports.slice(size);
  const serverName = opts.serverName ?? ((i: number) => `${name}-${i + 1}`);
  const routes = routePorts.map((p) => `nats-route://${host}:${p}`).join(", ");
  const clusterBlock = (i: number) =>
    size > 1
      ? `cluster { name: ${JSON.stringify(name)}, listen: "${host}:${routePorts[i]}", routes: [${routes}] }\n`
      : "";
  const startOne = (i: number) =>
    startNatsServer({
      host,
      port: clientPorts[i]!,
      storeDir: join(root, `s${i + 1}`),
      name: serverName(i),
      extraConfig: clusterBlock(i) + (opts.extraConfig?.(i) ?? ""),
      jetstream,
      ...(opts.config ? { config: opts.config } : {}),
      ...(opts.readyTimeoutMs ? { readyTimeoutMs: opts.readyTimeoutMs } : {}),
    });
  const servers: NatsServerHandle[] = [];
  // nats-server 2.9 sometimes leaves a server out of the JetStream meta group for good when its
  // routes race at start-up (duplicate routes closed both ways; measured: 2 starts in 100 with every
  // server started at once, 0 in 150 started one after another, the stuck server never recovering in
  // 60 s). So: start them one after another, and restart a server (same ports, same store) that has
  // not joined within JOIN_WAIT_MS, up to JOIN_RESTARTS times.
  const joined = async (i: number): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      try {
        await waitForLog(servers[i]!, JS_CLUSTER_READY, JOIN_WAIT_MS);
        return;
      } catch (e) {
        const s = servers[i]!;
        if (attempt >= JOIN_RESTARTS || s.process.exitCode !== null || s.process.signalCode !== null) throw e;
        await s.stop();
        servers[i] = await startOne(i);
      }
    }
  };
  try {
    for (let i = 0; i < size; i++) servers.push(await startOne(i));
    if (jetstream && size > 1) await Promise.all(servers.map((_, i) => joined(i)));
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(root, { recursive: true, force: true });
    throw e;
  }
  const urls = clientPorts.map((p) => `nats://${host}:${p}`);
  return {
    name,
    servers,
    urls,
    url: urls.join(","),
    routePorts,
    async kill(i, signal = "SIGKILL") {
      const s = servers[i]!;
      if (s.process.exitCode !== null || s.process.signalCode !== null) return;
      const exited = new Promise<void>((r) => s.process.once("exit", () => r()));
      s.process.kill(signal);
      await exited;
      await s.stop(); // removes its generated config only; the store stays for restart(i)
    },
    async restart(i) {
      servers[i] = await startOne(i);
      if (jetstream && size > 1) await joined(i);
      return servers[i]!;
    },
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
      await rm(root, { recursive: true, force: true });
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
