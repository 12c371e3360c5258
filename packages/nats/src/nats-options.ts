/**
 * How a NatsBus connects: its options, the credentials named in the environment, the server list, the
 * client's connection options, and the settings resolved once from them (payload limit, JetStream
 * domain, placement and replicas). Separate from the bus so the connection's configuration reads in
 * one place and the bus holds only what it does with a connection.
 */
import { existsSync } from "node:fs";
import { DEFAULT_MAX_PAYLOAD_BYTES, SageError } from "@sageserve/protocol";
import { type ConnectionOptions, nkeyAuthenticator } from "nats";
import { readSeed } from "./nats-auth.js";
import { AUTH_ROLES, type AuthRole, inboxPrefix } from "./nats-permissions.js";

export interface NatsBusOptions {
  /** One URL, a comma-separated list (`NATS_URL=nats://a:4222,nats://b:4222`) or an array: the client fails over between them. */
  servers: string | string[];
  /**
   * Replicas of the JetStream assets this connection creates (the `SAGE_NIW` stream, KV buckets):
   * default `SAGE_JS_REPLICAS`, else 3 when the server is in a cluster of 3 or more, else 1.
   */
  jsReplicas?: number;
  /** Connection name shown in the server's connz. */
  name?: string;
  token?: string;
  user?: string;
  pass?: string;
  /** NKey seed file of this connection's role (`<creds>/<role>.nk`, `NATS_NKEY`). */
  nkeySeedFile?: string;
  /** TLS: the CA that signed the server's certificate, and a client certificate for mutual TLS. */
  tls?: NatsTlsOptions;
  /** Prefix of this connection's reply inboxes (a role's own, `_INBOX_<role>`; default `_INBOX`). */
  inboxPrefix?: string;
  maxPayloadBytes?: number;
  /** Try `servers` in the order given (default: shuffled, which spreads clients over a cluster). */
  noRandomize?: boolean;
  /**
   * The JetStream domain to use (`SAGE_JS_DOMAIN`): a client on a leaf node reaches its hub's JetStream
   * through `$JS.<domain>.API` (docs/deploy.md, leaf nodes).
   */
  jsDomain?: string;
  /** The cluster new JetStream assets are placed in (`SAGE_JS_CLUSTER`): a supercluster's home cluster. */
  jsCluster?: string;
  /** How long `durablePublish` retries a stream that does not acknowledge (default 60 s). */
  durablePublishBudgetMs?: number;
  /** How long the first connection may take before it fails (default 20 s, the client's). */
  connectTimeoutMs?: number;
  /** Called on reconnects, disconnects and errors (log them). */
  onStatus?: (event: { type: string; data: unknown }) => void;
}

export interface NatsTlsOptions {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

/** What a connection authenticates with: an NKey seed file and TLS files. */
export interface NatsClientAuth {
  nkeySeedFile?: string;
  tls?: NatsTlsOptions;
  /** The role's reply inboxes, which its permissions allow (`inboxPrefix(role)`). */
  inboxPrefix?: string;
}

/**
 * Credentials from the environment, named as the `nats` CLI names them: `NATS_NKEY` (seed file),
 * `NATS_CA`, `NATS_CERT`, `NATS_KEY` (TLS), `NATS_INBOX_PREFIX`. With `SAGE_NATS_CREDS` (a directory made by
 * `sageserve nats-auth` / `scripts/gen-nats-auth.ts`) and a role, the seed is `<dir>/<role>.nk`.
 */
export function natsAuthFromEnv(
  role?: string,
  env: Record<string, string | undefined> = process.env,
): NatsClientAuth {
  const out: NatsClientAuth = {};
  const dir = env.SAGE_NATS_CREDS;
  if (dir && role) out.nkeySeedFile = `${dir}/${role}.nk`;
  else if (env.NATS_NKEY) out.nkeySeedFile = env.NATS_NKEY;
  // With credentials, replies come to the role's own inboxes (all its permissions allow).
  if (env.NATS_INBOX_PREFIX) out.inboxPrefix = env.NATS_INBOX_PREFIX;
  else if (out.nkeySeedFile && role && (AUTH_ROLES as readonly string[]).includes(role))
    out.inboxPrefix = inboxPrefix(role as AuthRole);
  const tls: NatsTlsOptions = {};
  if (env.NATS_CA) tls.caFile = env.NATS_CA;
  if (env.NATS_CERT) tls.certFile = env.NATS_CERT;
  if (env.NATS_KEY) tls.keyFile = env.NATS_KEY;
  if (Object.keys(tls).length) out.tls = tls;
  return out;
}

/** The client's connection options: endless reconnects, credentials and TLS checked before connecting. */
export function connectionOptions(opts: NatsBusOptions): ConnectionOptions {
  const co: ConnectionOptions = {
    servers: natsServerList(opts.servers),
    name: opts.name ?? "sageserve",
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
    pingInterval: 10_000,
    waitOnFirstConnect: false,
  };
  if (opts.token) co.token = opts.token;
  if (opts.user) co.user = opts.user;
  if (opts.pass) co.pass = opts.pass;
  if (opts.connectTimeoutMs !== undefined) co.timeout = opts.connectTimeoutMs;
  if (opts.noRandomize) co.noRandomize = true;
  if (opts.inboxPrefix) co.inboxPrefix = opts.inboxPrefix;
  if (opts.nkeySeedFile) {
    const seed = new TextEncoder().encode(readSeed(opts.nkeySeedFile));
    co.authenticator = nkeyAuthenticator(seed);
  }
  if (opts.tls) {
    if ((opts.tls.certFile === undefined) !== (opts.tls.keyFile === undefined))
      throw new SageError(
        "CONFIG",
        "NATS TLS: a client certificate needs its key, and a key its certificate",
      );
    for (const f of [opts.tls.caFile, opts.tls.certFile, opts.tls.keyFile])
      if (f !== undefined && !existsSync(f)) throw new SageError("CONFIG", `NATS TLS: no file ${f}`);
    co.tls = { ...opts.tls };
  }
  return co;
}

/** `NatsBusOptions` with their defaults and environment applied, resolved once per connection. */
export interface NatsBusSettings {
  maxPayload: number;
  /** The connection's name (`NatsBusOptions.name`). */
  name: string;
  durablePublishBudgetMs: number;
  jsOpts: { domain?: string };
  jsCluster: string | undefined;
  /** Replicas of the JetStream assets this connection creates (see `NatsBusOptions.jsReplicas`). */
  jsReplicas: number;
}

export function resolveNatsBusSettings(
  opts: NatsBusOptions,
  info: { cluster?: string; connect_urls?: string[] } | undefined,
): NatsBusSettings {
  const maxPayload = opts.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const name = opts.name ?? "sageserve";
  const durablePublishBudgetMs = opts.durablePublishBudgetMs ?? 60_000;
  const domain = opts.jsDomain ?? process.env.SAGE_JS_DOMAIN;
  const jsOpts = domain ? { domain } : {};
  const jsCluster = opts.jsCluster ?? (process.env.SAGE_JS_CLUSTER || undefined);
  const jsReplicas = resolveJsReplicas(opts.jsReplicas, process.env.SAGE_JS_REPLICAS, info);
  return { maxPayload, name, durablePublishBudgetMs, jsOpts, jsCluster, jsReplicas };
}

/** `servers` as the client takes them: a comma-separated string becomes a list. */
export function natsServerList(servers: string | string[]): string | string[] {
  if (Array.isArray(servers))
    return servers
      .flatMap((s) => s.split(","))
      .map((s) => s.trim())
      .filter(Boolean);
  return servers.includes(",") ? natsServerList([servers]) : servers;
}

/**
 * Replicas for new JetStream assets: the option, else `SAGE_JS_REPLICAS`, else 3 when the server says it
 * is in a cluster (`cluster`) that has 3 or more servers (its `connect_urls`), else 1.
 */
export function resolveJsReplicas(
  option: number | undefined,
  env: string | undefined,
  info: { cluster?: string; connect_urls?: string[] } | undefined,
): number {
  const explicit = option ?? (env ? Number(env) : undefined);
  if (explicit !== undefined) {
    if (!Number.isInteger(explicit) || explicit < 1 || explicit > 5)
      throw new SageError("CONFIG", `JetStream replicas must be an integer from 1 to 5, not '${explicit}'`);
    return explicit;
  }
  return info?.cluster && (info.connect_urls?.length ?? 0) >= 3 ? 3 : 1;
}
