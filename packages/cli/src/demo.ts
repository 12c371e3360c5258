import { NatsBus, type NatsServerHandle, natsFromEnvOrSpawn } from "@sageserve/nats";
import { errorMessage } from "@sageserve/protocol";
import {
  type ActorContext,
  type Bus,
  BusAuditor,
  type DemoLogEntry,
  DemoNodeActor,
  DemoRegionActor,
  MemoryBroker,
  type ServiceInfo,
  VirtualClock,
  WallClock,
} from "@sageserve/runtime";

export interface DemoOptions {
  clock: "wall" | "virtual";
  duration: number;
  nodes: number;
  heartbeatMs: number;
  seed: number;
  json?: boolean;
}

/**
 * The spine demo: region and node actors exchange heartbeats, load reports and
 * commands over a real nats-server (or on virtual time), while an auditor
 * validates every message. Prints each event, then what `nats micro ls` would
 * show and the per-subject message counts.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const wall = opts.clock === "wall";
  const clock = wall ? new WallClock({ seed: opts.seed }) : new VirtualClock({ seed: opts.seed });
  const t0 = clock.now();
  let server: NatsServerHandle | undefined;
  const buses: Bus[] = [];
  let url: string | undefined;
  const broker = wall ? undefined : new MemoryBroker(clock);

  if (wall) {
    try {
      ({ url, server } = await natsFromEnvOrSpawn());
    } catch (e) {
      console.error(errorMessage(e));
      return 2;
    }
  }
  say(
    `SageServe spine demo on ${wall ? `NATS at ${url}${server ? " (spawned nats-server)" : ""}` : "virtual time (in-memory bus)"}`,
  );

  const ctx = async (name: string): Promise<ActorContext> => {
    const bus = broker
      ? broker.connect(name)
      : await NatsBus.connect({ servers: url!, name: `sageserve-${name}` });
    buses.push(bus);
    return { bus, clock };
  };
  const auditor = new BusAuditor(await ctx("auditor"));
  const actors = [auditor, ...(await demoActors(ctx, opts, eventPrinter(clock, t0, opts.json)))];
  for (const a of actors) await a.start();

  let interrupted = false;
  const stopEarly = new Promise<void>((resolve) => {
    const onSignal = (): void => {
      interrupted = true;
      resolve();
    };
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });

  try {
    await runFor(clock, opts, stopEarly, say);
    if (interrupted) say("interrupted: shutting down");
    const services = await buses[0]!.discover({ timeoutMs: 300 });
    printBusSummary(services, auditor, opts.json, say);
    return 0;
  } finally {
    for (const a of actors) await a.stop();
    for (const b of buses) await b.close();
    if (clock instanceof WallClock) clock.cancelAll();
    await server?.stop();
  }

  function say(s: string): void {
    if (!opts.json) console.log(s);
  }
}

/** Prints each event the demo actors log, timed from the demo's start. */
function eventPrinter(clock: WallClock | VirtualClock, t0: number, json: boolean | undefined) {
  return {
    push: (e: DemoLogEntry) => {
      const at = ((clock.now() - t0) / 1000).toFixed(3);
      if (json) console.log(JSON.stringify({ atSeconds: Number(at), ...e }));
      else console.log(`[+${at.padStart(8)}s] ${e.actor.padEnd(9)} ${e.event.padEnd(10)} ${e.detail}`);
    },
  };
}

/** The region actor and `nodes` node actors (at least one), each with its own connection. */
async function demoActors(
  ctx: (name: string) => Promise<ActorContext>,
  opts: DemoOptions,
  printer: { push(e: DemoLogEntry): void },
): Promise<(DemoRegionActor | DemoNodeActor)[]> {
  const region = new DemoRegionActor(await ctx("region"), { heartbeatMs: opts.heartbeatMs, log: printer });
  const nodes: DemoNodeActor[] = [];
  for (let i = 1; i <= Math.max(1, Math.floor(opts.nodes)); i++) {
    nodes.push(
      new DemoNodeActor(await ctx(`node-${i}`), {
        nodeId: `n${i}`,
        heartbeatMs: opts.heartbeatMs,
        log: printer,
      }),
    );
  }
  return [region, ...nodes];
}

/** Let the actors run: `duration` seconds of virtual time, or of wall time or until Ctrl-C. */
async function runFor(
  clock: WallClock | VirtualClock,
  opts: DemoOptions,
  stopEarly: Promise<void>,
  say: (s: string) => void,
): Promise<void> {
  if (clock instanceof VirtualClock) {
    await clock.advance(opts.duration * 1000);
  } else if (opts.duration > 0) {
    await Promise.race([clock.sleep(opts.duration * 1000), stopEarly]);
  } else {
    say("running until Ctrl-C");
    await stopEarly;
  }
}

/** What `nats micro ls` would show, and the messages the auditor saw per subject. */
function printBusSummary(
  services: ServiceInfo[],
  auditor: BusAuditor,
  json: boolean | undefined,
  say: (s: string) => void,
): void {
  if (!json) {
    say("\nservices on the bus (what `nats micro ls` shows):");
    for (const s of services.sort((a, b) => a.id.localeCompare(b.id))) {
      say(`  ${s.name.padEnd(12)} ${s.metadata.instance?.padEnd(20) ?? ""} ${s.endpoints.length} endpoints`);
    }
    say("\nmessages seen by the auditor (valid / rejected):");
    for (const [name, c] of Object.entries(auditor.counts())) {
      if (c.valid + c.rejected > 0)
        say(`  ${name.padEnd(20)} ${String(c.valid).padStart(6)} / ${c.rejected}`);
    }
  } else {
    console.log(JSON.stringify({ services: services.map((s) => s.name), audit: auditor.counts() }));
  }
}
