import { hasNatsServer, NATS_INSTALL_HINT, startNatsServer } from "@sageserve/nats";

export interface NatsFixture {
  url: string;
  kind: "env" | "binary" | "container";
  stop(): Promise<void>;
}

/**
 * A real NATS server for integration tests: NATS_URL if set, else a spawned
 * `nats-server -js` on a free loopback port with a temporary store, else a
 * testcontainers NATS where a Docker engine answers. No NATS at all is a test
 * failure, never a silent skip.
 */
export async function startNats(): Promise<NatsFixture> {
  const env = process.env.NATS_URL;
  if (env) return { url: env, kind: "env", stop: async () => {} };
  if (hasNatsServer()) {
    const s = await startNatsServer();
    return { url: s.url, kind: "binary", stop: () => s.stop() };
  }
  try {
    const { getContainerRuntimeClient } = await import("testcontainers");
    await getContainerRuntimeClient();
  } catch {
    throw new Error(
      `No NATS for integration tests and no Docker engine for testcontainers.\n${NATS_INSTALL_HINT}`,
    );
  }
  const { NatsContainer } = await import("@testcontainers/nats");
  const c = await new NatsContainer("nats:2.10-alpine").withArg("-js", "").start();
  return {
    url: String(c.getConnectionOptions().servers),
    kind: "container",
    stop: async () => {
      await c.stop();
    },
  };
}
