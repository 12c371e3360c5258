import { AUTH_ROLES, generateNatsAuth } from "@sageserve/runtime";
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
    });
    if (o.json) {
      console.log(JSON.stringify(files, null, 2));
      return 0;
    }
    console.log(`server config   ${files.config}   (nats-server -c ${files.config})`);
    for (const role of AUTH_ROLES)
      console.log(`${role.padEnd(15)} ${files.seeds[role]}  ${files.publicKeys[role]}`);
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
