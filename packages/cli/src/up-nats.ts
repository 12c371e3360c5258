// The NATS `sageserve up` runs on: its credentials (an NKey per role, optionally TLS), and the server —
// NATS_URL's, or a nats-server (or a cluster of them) spawned for the run. Separate from `upCommand` so
// the command reads as the cluster's life: NATS up, services up, load, shutdown.
import { resolve } from "node:path";
import {
  type AuthRole,
  generateNatsAuth,
  inboxPrefix,
  type NatsAuthFiles,
  type NatsClientAuth,
  startNatsCluster,
  startNatsServer,
} from "@sageserve/nats";
import { SageError } from "@sageserve/protocol";

export interface UpNatsOptions {
  /** NKey credentials and permissions per role (default on; `--no-auth` for a NATS of your own without). */
  auth?: boolean;
  /** Also require TLS: a CA and server certificate in `<state-dir>/nats-auth/tls` (openssl). */
  tls?: boolean;
  /** Where `up` keeps its state: the NATS credentials in `<dir>/nats-auth` (default `.sageserve`). */
  stateDir?: string;
  /** Spawn this many clustered nats-servers instead of one (ignored with NATS_URL). */
  natsCluster?: number;
  /** Replicas of the JetStream assets (`SAGE_JS_REPLICAS`; default by cluster size). */
  jsReplicas?: number;
}

/** The spawned NATS: one server or a cluster. */
export interface SpawnedNats {
  url: string;
  size: number;
  logs(): string[];
  stop(): Promise<void>;
}

export interface UpNats {
  url: string;
  /** None with NATS_URL. */
  server: SpawnedNats | undefined;
  /** None with `--no-auth`. */
  auth: NatsAuthFiles | undefined;
}

/** Credentials of every role in `files`, as `startService` and the CLI connect with them. */
export function roleAuth(files: NatsAuthFiles): (role: AuthRole) => NatsClientAuth {
  return (role) => ({
    nkeySeedFile: files.seeds[role],
    inboxPrefix: inboxPrefix(role),
    ...(files.tls ? { tls: { caFile: files.tls.caFile } } : {}),
  });
}

/** Credentials (unless `--no-auth`), then NATS_URL or a spawned server or cluster configured with them. */
export async function startUpNats(o: UpNatsOptions): Promise<UpNats> {
  if (o.tls && o.auth === false)
    throw new SageError("CONFIG", "--tls comes with the credentials: drop --no-auth to use it");
  let auth: NatsAuthFiles | undefined;
  if (o.auth ?? true) {
    // Kept across runs: a NATS_URL server configured with this nats-server.conf keeps working.
    auth = generateNatsAuth(resolve(o.stateDir ?? ".sageserve", "nats-auth"), o.tls ? { tls: true } : {});
  }
  if (o.jsReplicas !== undefined) process.env.SAGE_JS_REPLICAS = String(o.jsReplicas);
  if (process.env.NATS_URL) return { url: process.env.NATS_URL, server: undefined, auth };
  const server =
    (o.natsCluster ?? 1) > 1 ? await spawnCluster(o.natsCluster!, auth) : await spawnServer(auth);
  return { url: server.url, server, auth };
}

async function spawnCluster(size: number, auth: NatsAuthFiles | undefined): Promise<SpawnedNats> {
  const c = await startNatsCluster({ size, ...(auth ? { config: auth.config } : {}) });
  return {
    url: c.url,
    size: c.servers.length,
    logs: () => c.servers.map((s) => s.log()),
    stop: () => c.stop(),
  };
}

async function spawnServer(auth: NatsAuthFiles | undefined): Promise<SpawnedNats> {
  const s = await startNatsServer(auth ? { config: auth.config } : {});
  return { url: s.url, size: 1, logs: () => [s.log()], stop: () => s.stop() };
}

/** The "nats" event: where NATS is and which credentials it takes. */
export function natsEvent(nats: UpNats): { fields: Record<string, unknown>; text: string } {
  const { url, server, auth } = nats;
  return {
    fields: {
      url,
      spawned: !!server,
      servers: server?.size ?? null,
      creds: auth?.dir ?? null,
      ca: auth?.tls?.caFile ?? null,
    },
    text: [
      `NATS            ${url}${server ? (server.size > 1 ? ` (spawned cluster of ${server.size} nats-servers with JetStream)` : " (spawned nats-server with JetStream)") : " (NATS_URL)"}`,
      auth
        ? `credentials     ${auth.dir} (an NKey per role; nats-server.conf${server ? "" : " — enforced once your NATS_URL server runs with it"})`
        : "credentials     none (--no-auth)",
      ...(auth?.tls ? [`TLS             required; CA ${auth.tls.caFile}`] : []),
    ].join("\n"),
  };
}
