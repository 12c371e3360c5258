// Starting and stopping one service of the cluster (`sageserve up` starts each in turn, `sageserve actor
// <service>` one): the role's actors from `SERVICE_STARTERS`, started in order, stopped in reverse.
import { DashboardActor } from "@sageserve/dashboard";
import { GatewayActor } from "@sageserve/gateway";
import type { Actor } from "@sageserve/runtime";
import type { ClusterSpec, ServiceDef } from "./cluster.js";
import { SERVICE_STARTERS } from "./service-actors.js";
import { type ServiceActors, ServiceConnections, type ServiceDeps } from "./service-context.js";

export interface RunningService {
  def: ServiceDef;
  actors: Actor[];
  /** URL of its HTTP server, when it has one. */
  url?: string;
  stop(): Promise<void>;
}

/** Start one service of the cluster; every actor gets its own NATS connection. */
export async function startService(
  def: ServiceDef,
  spec: ClusterSpec,
  deps: ServiceDeps,
): Promise<RunningService> {
  const conns = new ServiceConnections(deps);
  let made: ServiceActors;
  try {
    made = await SERVICE_STARTERS[def.role](def, spec, conns);
  } catch (e) {
    // A later connection refused (auth, unreachable): the ones already open are closed, not leaked.
    await conns.closeAll();
    throw e;
  }
  const { actors, cleanup } = made;
  try {
    for (const a of actors) await a.start();
  } catch (e) {
    // Same order as a normal stop: agents first, then the VMs they command, then the connections.
    for (const a of [...actors].reverse()) await a.stop().catch(() => {});
    await cleanup?.();
    await conns.closeAll();
    throw e;
  }
  const http = actors.find((a) => a instanceof GatewayActor || a instanceof DashboardActor) as
    | GatewayActor
    | DashboardActor
    | undefined;
  const url = http?.url;
  return {
    def,
    actors,
    ...(url ? { url } : {}),
    async stop() {
      // Agents first (no new scaling), then the VMs they command, then the connections.
      for (const a of [...actors].reverse()) await a.stop().catch(() => {});
      await cleanup?.();
      await conns.closeAll();
    },
  };
}
