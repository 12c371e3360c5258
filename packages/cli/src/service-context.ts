// What a service's actors start with: a NATS connection each (authenticated as the actor's role), the
// shared clock and a logger. Separate from the per-role starters so each of them reads as the actors it
// makes, and from `startService` so the connections are opened and closed in one place.

import type { AuthRole, NatsClientAuth } from "@sageserve/nats";
import { NatsBus } from "@sageserve/nats";
import type { Actor, Bus, Clock, Logger } from "@sageserve/runtime";
import { createLogger } from "@sageserve/runtime";

export interface ServiceDeps {
  natsUrl: string;
  clock: Clock;
  /** argv that runs `sageserve` (for the engine processes the VM provider starts). */
  sageserveArgv: string[];
  logLevel?: string;
  /** Credentials per role (NKey seed, TLS); none = connect without (a NATS without auth). */
  natsAuth?: (role: AuthRole) => NatsClientAuth;
}

/** The actors a service runs, in start order, and what to release after they stop. */
export interface ServiceActors {
  actors: Actor[];
  cleanup?: () => Promise<void>;
}

/** Every NATS connection a service opens, so it can close them all. */
export class ServiceConnections {
  readonly buses: Bus[] = [];
  readonly clock: Clock;
  readonly sageserveArgv: string[];
  private readonly deps: ServiceDeps;

  constructor(deps: ServiceDeps) {
    this.deps = deps;
    this.clock = deps.clock;
    this.sageserveArgv = deps.sageserveArgv;
  }

  logger(name: string): Logger {
    return createLogger({ name, level: this.deps.logLevel ?? "warn" });
  }

  // Every connection authenticates as its actor's role: a region service holds three (region agent,
  // VM provider, and node agent for the nodes it starts), each with only its own permissions.
  async connect(name: string, role: AuthRole): Promise<Bus> {
    const bus = await NatsBus.connect({
      servers: this.deps.natsUrl,
      name: `sageserve-${name}`,
      ...(this.deps.natsAuth?.(role) ?? {}),
    });
    this.buses.push(bus);
    return bus;
  }

  /** An actor's context: its own connection as `role`, the clock, a logger named after it. */
  async context(name: string, role: AuthRole): Promise<{ bus: Bus; clock: Clock; log: Logger }> {
    return {
      bus: await this.connect(name, role),
      clock: this.deps.clock,
      log: this.logger(name),
    };
  }

  async closeAll(): Promise<void> {
    for (const b of this.buses) await b.close().catch(() => {});
  }
}
