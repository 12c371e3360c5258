import { chmodSync, copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { AUTH_ROLES, generateNatsAuth } from "@sageserve/nats";
import { SageError } from "@sageserve/protocol";
import { clusterServices, loadClusterSpec, SERVICE_AUTH_ROLES } from "./cluster.js";
import { explain } from "./sim.js";

export interface NatsAuthCommandOptions {
  out: string;
  tls?: boolean;
  tlsHost?: string[];
  tlsVerify?: boolean;
  storeDir?: string;
  listen?: string;
  httpPort?: number;
  json?: boolean;
  /** Also copy nats-server.conf here (the server's config volume; no seeds). */
  confDir?: string;
  /** Also give each service of the cluster `<dir>/<service>/` with only its roles' seeds (compose volumes). */
  serviceCreds?: string;
  /** The cluster description whose services `serviceCreds` lists (default: built in). */
  cluster?: string;
  /** Comma-separated regions: a credential per region (region agent, VM provider). */
  regions?: string;
  /** Comma-separated `<node>@<region>`: a node-agent credential per host. */
  nodes?: string;
}

const list = (s: string | undefined): string[] =>
  (s ?? "")
    .split(",")
    .map((x) => x.trim())
    .filter(Boolean);

/** `--nodes a@westus,b@eastus` → the hosts and their regions. */
export function parseNodes(s: string | undefined): { node: string; region: string }[] {
  return list(s).map((x) => {
    const m = /^([^@]+)@([^@]+)$/.exec(x);
    if (!m) throw new SageError("CONFIG", `--nodes takes <node>@<region>, not '${x}'`);
    return { node: m[1]!, region: m[2]! };
  });
}

/**
 * `sageserve nats-auth` (and `scripts/gen-nats-auth.ts`): an NKey seed per role, the nats-server config
 * with their public keys and permissions, optionally TLS certificates. Idempotent (docs/security.md).
 */
export function natsAuthCommand(o: NatsAuthCommandOptions): number {
  try {
    const files = generateNatsAuth(o.out, {
      ...(o.tls ? { tls: true } : {}),
      ...(o.tlsVerify ? { tlsVerify: true } : {}),
      ...(o.tlsHost?.length ? { tlsHosts: o.tlsHost } : {}),
      ...(o.storeDir ? { storeDir: o.storeDir } : {}),
      ...(o.listen ? { listen: o.listen } : {}),
      ...(o.httpPort !== undefined ? { httpPort: o.httpPort } : {}),
      ...(o.regions ? { regions: list(o.regions) } : {}),
      ...(o.nodes ? { nodes: parseNodes(o.nodes) } : {}),
    });
    if (o.confDir) {
      mkdirSync(o.confDir, { recursive: true });
      copyFileSync(files.config, join(o.confDir, "nats-server.conf"));
    }
    if (o.serviceCreds) {
      for (const s of clusterServices(loadClusterSpec(o.cluster))) {
        const dir = join(o.serviceCreds, s.name);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        for (const role of SERVICE_AUTH_ROLES[s.role]) {
          const to = join(dir, `${role}.nk`);
          copyFileSync(files.seeds[role], to);
          chmodSync(to, 0o600);
        }
      }
    }
    if (o.json) {
      console.log(JSON.stringify(files, null, 2));
      return 0;
    }
    console.log(`server config   ${files.config}   (nats-server -c ${files.config})`);
    for (const role of AUTH_ROLES)
      console.log(`${role.padEnd(15)} ${files.seeds[role]}  ${files.publicKeys[role]}`);
    for (const c of Object.values(files.scoped))
      console.log(
        `${c.name.padEnd(15)} ${c.seed}  ${c.publicKey}  (NATS_NKEY=${c.seed} NATS_INBOX_PREFIX=${c.inboxPrefix})`,
      );
    if (files.tls) {
      console.log(`TLS CA          ${files.tls.caFile}   (clients: NATS_CA=${files.tls.caFile})`);
      console.log(`TLS server      ${files.tls.certFile}, ${files.tls.keyFile}`);
      console.log(`TLS client      ${files.tls.clientCertFile}, ${files.tls.clientKeyFile}`);
    }
    console.log(
      `clients         SAGE_NATS_CREDS=${files.dir} (each service picks <role>.nk), or NATS_NKEY=<file> for one role`,
    );
    return 0;
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
}
