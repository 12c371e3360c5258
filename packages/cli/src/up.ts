// `sageserve up`: the command — options, the cluster description with the command line's overrides, and
// the run's life from NATS to shutdown (`up-nats.ts`, `up-session.ts` hold the steps).
import { fileURLToPath } from "node:url";
import { type ClusterSpec, loadClusterSpec } from "./cluster.js";
import type { ServiceDeps } from "./service-context.js";
import { explain } from "./sim.js";
import { natsEvent, roleAuth, startUpNats, type UpNats, type UpNatsOptions } from "./up-nats.js";
import { sayer, UpSession } from "./up-session.js";

export interface UpOptions extends UpNatsOptions {
  /** Seconds to run; 0 = until Ctrl-C. */
  duration: number;
  cluster?: string;
  gatewayPort?: number;
  dashboardPort?: number;
  /** Requests per second of the built-in workload (0 = no load). */
  rate?: number;
  load: boolean;
  json?: boolean;
  logLevel?: string;
}

/** argv that runs this CLI again (engine processes are `sageserve emulator ...`). */
export function sageserveArgv(): string[] {
  return [process.execPath, fileURLToPath(new URL("../bin/sageserve.js", import.meta.url))];
}

/** The cluster description with the ports and load rate given on the command line. */
function withCommandLine(spec: ClusterSpec, o: UpOptions): ClusterSpec {
  return {
    ...spec,
    gateway: { ...spec.gateway, ...(o.gatewayPort !== undefined ? { port: o.gatewayPort } : {}) },
    dashboard: { ...spec.dashboard, ...(o.dashboardPort !== undefined ? { port: o.dashboardPort } : {}) },
    load: { ...spec.load, ...(o.rate !== undefined ? { ratePerSecond: o.rate } : {}) },
  };
}

/**
 * `sageserve up`: a whole cluster on this machine — NATS (NATS_URL or a spawned nats-server with
 * JetStream), the dashboard, the planner, a router, a region agent + local VM provider per region
 * (node agents with engine emulator processes), the gateway — then the built-in workload through
 * the gateway. Ctrl-C (or --duration) stops everything, child processes included.
 */
export async function upCommand(o: UpOptions): Promise<number> {
  let spec: ClusterSpec;
  try {
    spec = loadClusterSpec(o.cluster);
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
  spec = withCommandLine(spec, o);
  const say = sayer(o.json);
  let nats: UpNats;
  try {
    nats = await startUpNats(o);
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
  const natsAuth = nats.auth ? roleAuth(nats.auth) : undefined;
  const session = new UpSession(spec, nats, say);
  process.on("SIGINT", session.onSignal);
  process.on("SIGTERM", session.onSignal);

  try {
    const event = natsEvent(nats);
    say("nats", event.fields, event.text);
    const deps: ServiceDeps = {
      natsUrl: nats.url,
      clock: session.clock,
      sageserveArgv: sageserveArgv(),
      ...(o.logLevel ? { logLevel: o.logLevel } : {}),
      ...(natsAuth ? { natsAuth } : {}),
    };
    await session.startServices(deps);
    if (!session.signals) {
      await session.awaitServing(natsAuth);
      session.announceReady(o.load, o.duration);
      await session.runLoad(o.load, o.duration);
    }
  } catch (e) {
    console.error(explain(e));
    await session.shutdown();
    stopListening(session);
    return 1;
  }
  await session.shutdown();
  session.reportStopped();
  stopListening(session);
  return 0;
}

/** After the shutdown, on success and on failure alike: the signal handlers go (a caller may run `up` again). */
function stopListening(session: UpSession): void {
  process.off("SIGINT", session.onSignal);
  process.off("SIGTERM", session.onSignal);
}
