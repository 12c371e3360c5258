// NATS credentials for a SageServe deployment: an NKey seed per role, a nats-server config with only
// their public keys and each role's permissions, and optionally a CA + server/client certificates (TLS).
//   npx tsx --conditions=source scripts/gen-nats-auth.ts --out /etc/sageserve/nats [--tls --tls-host nats.internal]
// The same as `sageserve nats-auth`. Idempotent: existing seeds and certificates are kept, the config is
// rewritten (docs/security.md).
import { parseArgs } from "node:util";
import { natsAuthCommand } from "@sageserve/cli";
import { AUTH_ROLES } from "@sageserve/nats";

const { values } = parseArgs({
  options: {
    out: { type: "string", default: "nats-auth" },
    tls: { type: "boolean", default: false },
    "tls-host": { type: "string", multiple: true },
    "tls-verify": { type: "boolean", default: false },
    "store-dir": { type: "string" },
    listen: { type: "string" },
    "http-port": { type: "string" },
    json: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

if (values.help) {
  console.log(
    [
      "usage: gen-nats-auth.ts [--out dir] [--tls [--tls-host name]... [--tls-verify]] [--store-dir dir] [--listen host:port] [--http-port n] [--json]",
      "  --out         directory for <role>.nk seeds and nats-server.conf (default ./nats-auth)",
      "  --tls         make a CA, a server and a client certificate (openssl) and require TLS",
      "  --tls-host    a name or IP the server certificate is valid for (repeat; default localhost, 127.0.0.1, nats)",
      "  --tls-verify  require client certificates (mutual TLS)",
      "  --store-dir   JetStream store directory in the config",
      "  --listen      client listen address in the config, e.g. 0.0.0.0:4222",
      "  --http-port   monitoring port in the config",
      `roles: ${AUTH_ROLES.join(", ")}`,
    ].join("\n"),
  );
  process.exit(0);
}

const httpPort = values["http-port"] === undefined ? undefined : Number(values["http-port"]);
if (httpPort !== undefined && !(Number.isInteger(httpPort) && httpPort >= 0 && httpPort < 65536)) {
  console.error(`--http-port: expected a port number, got '${values["http-port"]}'`);
  process.exit(2);
}
process.exitCode = natsAuthCommand({
  out: values.out,
  tls: values.tls,
  tlsVerify: values["tls-verify"],
  ...(values["tls-host"] ? { tlsHost: values["tls-host"] } : {}),
  ...(values["store-dir"] ? { storeDir: values["store-dir"] } : {}),
  ...(values.listen ? { listen: values.listen } : {}),
  ...(httpPort !== undefined ? { httpPort } : {}),
  json: values.json,
});
