import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SageError } from "@sageserve/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { generateNatsAuth, readSeed } from "./nats-auth.js";
import { natsAuthFromEnv } from "./nats-options.js";
import { AUTH_ROLES } from "./nats-permissions.js";

const dirs: string[] = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "sage-auth-unit-"));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const error = (f: () => unknown): SageError => {
  try {
    f();
  } catch (e) {
    return e as SageError;
  }
  throw new Error("expected an error");
};

describe("NATS credentials", () => {
  it("makes a 0600 seed per role and a config with every public key, each role's permissions and no seed", () => {
    const d = tmp();
    const files = generateNatsAuth(d);
    const conf = readFileSync(files.config, "utf8");
    for (const role of AUTH_ROLES) {
      expect(statSync(files.seeds[role]).mode & 0o777).toBe(0o600);
      expect(readSeed(files.seeds[role])).toMatch(/^SU/);
      expect(conf).toContain(`nkey: "${files.publicKeys[role]}"`);
    }
    expect(conf).not.toMatch(/\bSU[A-Z2-7]{20,}/);
    expect(conf).toContain("jetstream: enabled");
    expect(conf).not.toContain("tls {");
    expect(new Set(Object.values(files.publicKeys)).size).toBe(AUTH_ROLES.length);
  });

  it("keeps existing seeds, and rejects a seed file that holds no seed with a typed error", () => {
    const d = tmp();
    const first = generateNatsAuth(d, { storeDir: "/data/js", listen: "0.0.0.0:4222", httpPort: 8222 });
    expect(generateNatsAuth(d).publicKeys).toEqual(first.publicKeys);
    const conf = readFileSync(first.config, "utf8");
    expect(conf).not.toContain("/data/js"); // the second run rewrote the config without them
    writeFileSync(join(d, "router.nk"), "not a seed\n");
    const e = error(() => generateNatsAuth(d));
    expect(e).toBeInstanceOf(SageError);
    expect(e.code).toBe("AUTH");
    expect(e.message).toContain("router.nk");
    expect(error(() => readSeed(join(d, "nope.nk"))).code).toBe("AUTH");
  });

  it("names the missing openssl when TLS is asked for (typed CONFIG error)", () => {
    const before = process.env.OPENSSL_BIN;
    process.env.OPENSSL_BIN = "/nonexistent/openssl";
    try {
      const e = error(() => generateNatsAuth(tmp(), { tls: true }));
      expect(e.code).toBe("CONFIG");
      expect(e.message).toMatch(/openssl is needed/);
    } finally {
      if (before === undefined) delete process.env.OPENSSL_BIN;
      else process.env.OPENSSL_BIN = before;
    }
  });

  it("reads client credentials from the environment, as the nats CLI names them", () => {
    expect(natsAuthFromEnv("router", {})).toEqual({});
    expect(natsAuthFromEnv("router", { SAGE_NATS_CREDS: "/c" })).toEqual({
      nkeySeedFile: "/c/router.nk",
      inboxPrefix: "_INBOX_router",
    });
    expect(natsAuthFromEnv("operator", { NATS_NKEY: "/k/op.nk", NATS_CA: "/k/ca.pem" })).toEqual({
      nkeySeedFile: "/k/op.nk",
      inboxPrefix: "_INBOX_operator",
      tls: { caFile: "/k/ca.pem" },
    });
    expect(
      natsAuthFromEnv("node-agent", {
        NATS_NKEY: "/k/n.nk",
        NATS_INBOX_PREFIX: "_INBOX_x",
        NATS_CERT: "/k/c.pem",
        NATS_KEY: "/k/c-key.pem",
      }),
    ).toEqual({
      nkeySeedFile: "/k/n.nk",
      inboxPrefix: "_INBOX_x",
      tls: { certFile: "/k/c.pem", keyFile: "/k/c-key.pem" },
    });
  });
});
