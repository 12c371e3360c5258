/**
 * The live request path for benchmarks: a spawned nats-server, an engine emulator, a node agent, a
 * router and a gateway (region westus), started and stopped together.
 */
import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import { NatsBus, startNatsServer } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";

export interface RequestPath {
  emu: EmulatorHandle;
  /** With `regionAgent`: the region's agent, consuming the durable NIW queue (batch work). */
  agent?: RegionAgentActor;
  node: NodeAgentActor;
  router: RouterActor;
  gateway: GatewayActor;
  clock: WallClock;
  stop(): Promise<void>;
}

/** `speedup`: the emulator's; `models`: offered by router and gateway (only the first is served). */
export async function startRequestPath(o: {
  speedup: number;
  models: string[];
  nodeId: string;
  /** Also run the region agent (unified mode): batch work is queued and released by it. */
  regionAgent?: boolean;
}): Promise<RequestPath> {
  const server = await startNatsServer();
  const clock = new WallClock({ seed: 1 });
  const model = o.models[0]!;
  const emu = await startEmulator({ model, gpu: "h100", speedup: o.speedup });
  const buses: NatsBus[] = [];
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: server.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  const node = new NodeAgentActor(await ctx("node"), {
    nodeId: o.nodeId,
    region: "westus",
    gpuType: "h100",
    engine: { url: emu.url, kind: "vllm", model, kvCapacityTokens: 5_000_000 },
    loadReportMs: 200,
  });
  const router = new RouterActor(await ctx("router"), { regions: ["westus"], models: o.models });
  const gateway = new GatewayActor(await ctx("gateway"), { region: "westus", models: o.models });
  const agent = o.regionAgent
    ? new RegionAgentActor(await ctx("region-agent"), {
        region: "westus",
        models: o.models,
        mode: "unified",
        gpuTypes: ["h100"],
      })
    : undefined;
  for (const a of [router, node, gateway, ...(agent ? [agent] : [])]) await a.start();
  while (node.currentState !== "serving") await clock.sleep(50);
  // The router knows the instance once a load report reached it.
  while (router.routableInstances(model).length === 0) await clock.sleep(50);
  return {
    emu,
    ...(agent ? { agent } : {}),
    node,
    router,
    gateway,
    clock,
    async stop() {
      for (const a of [gateway, node, router, ...(agent ? [agent] : [])]) await a.stop();
      for (const b of buses) await b.close();
      await emu.close();
      clock.cancelAll();
      await server.stop();
    },
  };
}
