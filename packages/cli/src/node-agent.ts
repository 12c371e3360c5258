import { NatsBus, natsAuthFromEnv } from "@sageserve/nats";
import { loadNodeAgentConfig, NodeAgentActor } from "@sageserve/node-agent";
import { createLogger, WallClock } from "@sageserve/runtime";
import { explain } from "./sim.js";

/** `sageserve node-agent --config node.json`: run one node agent on this GPU host until SIGINT/SIGTERM. */
export async function nodeAgentCommand(o: { config?: string; enginePriority?: string }): Promise<number> {
  try {
    const opts = loadNodeAgentConfig(o.config, process.env, {
      ...(o.enginePriority ? { enginePriority: o.enginePriority } : {}),
    });
    const url = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
    const clock = new WallClock();
    const log = createLogger({ name: `node-agent-${opts.nodeId}` });
    const bus = await NatsBus.connect({
      servers: url,
      name: `node-agent-${opts.nodeId}`,
      // SAGE_NATS_CREDS (<dir>/node-agent.nk) or NATS_NKEY; NATS_CA/NATS_CERT/NATS_KEY for TLS.
      ...natsAuthFromEnv("node-agent"),
      onStatus: (s) => log.warn({ nats: s.type }, "NATS connection status"),
    });
    const agent = new NodeAgentActor({ bus, clock, log }, opts);
    await agent.start();
    log.info({ nats: url, engine: opts.engine.url, model: opts.engine.model }, "node agent running");
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await agent.stop();
    await bus.close();
    clock.cancelAll();
    return 0;
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
}
