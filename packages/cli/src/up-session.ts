// One `sageserve up` run once its NATS is up: the services started in turn, a first plan, the wait for
// every endpoint to serve, the built-in load, and the shutdown Ctrl-C (or --duration) brings. A class
// because those steps share what has started so far, which the shutdown must stop.

import { NatsBus, type PermissionViolation, permissionViolations } from "@sageserve/nats";
import { envelope, PlanRequest, RegionStatus, validatePayload } from "@sageserve/protocol";
import { type Bus, WallClock } from "@sageserve/runtime";
import { type ClusterSpec, clusterServices } from "./cluster.js";
import { LoadReplayer } from "./load.js";
import type { ServiceDeps } from "./service-context.js";
import { type RunningService, startService } from "./services.js";
import type { UpNats } from "./up-nats.js";

/** Reports an event: a JSON line with `--json`, else the text (or the event's name). */
export type Say = (event: string, fields?: Record<string, unknown>, text?: string) => void;

export function sayer(json: boolean | undefined): Say {
  return (event, fields = {}, text) => {
    if (json) console.log(JSON.stringify({ event, ...fields }));
    else console.log(text ?? event);
  };
}

/** How long `up` waits for every model of every region to have a serving instance before the load. */
const READY_TIMEOUT_MS = 90_000;

export class UpSession {
  readonly clock = new WallClock();
  readonly running: RunningService[] = [];
  /** Ctrl-C / SIGTERM received so far. */
  signals = 0;
  private load: LoadReplayer | undefined = undefined;
  private violations: PermissionViolation[] = [];
  private stopping: Promise<void> | undefined = undefined;
  private interrupted: () => void = () => {};
  private readonly interruptedP: Promise<void>;
  private readonly spec: ClusterSpec;
  private readonly nats: UpNats;
  private readonly say: Say;

  constructor(spec: ClusterSpec, nats: UpNats, say: Say) {
    this.spec = spec;
    this.nats = nats;
    this.say = say;
    this.interruptedP = new Promise<void>((r) => {
      this.interrupted = r;
    });
  }

  readonly onSignal = (): void => {
    this.signals++;
    if (this.signals > 1) {
      // A second Ctrl-C: leave now. Engines watch this process and exit within a second.
      console.error("forced exit");
      process.exit(130);
    }
    this.interrupted();
  };

  /** Each service of the cluster in start order, until they all run or a signal comes. */
  async startServices(deps: ServiceDeps): Promise<void> {
    for (const def of clusterServices(this.spec)) {
      const s = await startService(def, this.spec, deps);
      this.running.push(s);
      this.say(
        "service",
        { name: def.name, role: def.role, url: s.url },
        `started         ${def.name}${s.url ? `  ${s.url}` : ""}`,
      );
      if (this.signals) break;
    }
  }

  /**
   * A first plan right away, then wait (at most READY_TIMEOUT_MS) until every endpoint serves, on a connection of
   * its own (as the admin role).
   */
  async awaitServing(natsAuth: ServiceDeps["natsAuth"]): Promise<void> {
    const bus = await NatsBus.connect({
      servers: this.nats.url,
      name: "sageserve-up",
      ...natsAuth?.("admin"),
    });
    // A first plan right away (then on the planner's schedule), so the dashboard has one to show.
    await bus
      .request(
        PlanRequest.subject.build({}),
        envelope(PlanRequest, { requestedBy: "sageserve-up", reason: "cluster start" }),
        { timeoutMs: 30_000 },
      )
      .catch(() => undefined);
    // Load starts once every endpoint serves (the first VMs take a few seconds to boot).
    const readyBy = Date.now() + READY_TIMEOUT_MS;
    let waiting: string[] = [];
    while (!this.signals && Date.now() < readyBy) {
      waiting = await this.notServing(bus);
      if (waiting.length === 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    if (waiting.length)
      this.say(
        "not-ready",
        { waiting },
        `still booting after ${READY_TIMEOUT_MS / 1000} s: ${waiting.join(", ")}`,
      );
    await bus.close();
  }

  /** `<region>/<model>` of every endpoint without a serving instance, from the regions' status. */
  private async notServing(bus: Bus): Promise<string[]> {
    const regions = await bus.kvEntries("sage-regions").catch(() => new Map<string, unknown>());
    return this.spec.regions.flatMap((r) => {
      const st = validatePayload(RegionStatus, regions.get(r.id));
      const serving = (m: string) =>
        st.ok ? (st.value.endpoints.find((e) => e.model === m)?.instances.serving ?? 0) : 0;
      return r.models.filter((m) => serving(m) === 0).map((m) => `${r.id}/${m}`);
    });
  }

  /** The "ready" event: where the gateway and dashboard are and how to try and inspect the cluster. */
  announceReady(load: boolean, durationSeconds: number): void {
    const gateway = this.url("gateway");
    const dashboard = this.url("dashboard");
    const { url: natsUrl, auth } = this.nats;
    const spec = this.spec;
    const env = `${auth ? ` SAGE_NATS_CREDS=${auth.dir}` : ""}${auth?.tls ? ` NATS_CA=${auth.tls.caFile}` : ""}`;
    this.say(
      "ready",
      { gateway, dashboard, nats: natsUrl, creds: auth?.dir ?? null, ca: auth?.tls?.caFile ?? null },
      [
        "",
        `gateway         ${gateway}/v1  (OpenAI API; x-sage-tier: fast|normal|batch, x-sage-region: ${spec.regions.map((r) => r.id).join("|")})`,
        `dashboard       ${dashboard}`,
        `try             curl -s ${gateway}/v1/completions -H 'content-type: application/json' -d '{"model":"${spec.regions[0]!.models[0]}","prompt":"hello","max_tokens":8}'`,
        `inspect         NATS_URL=${natsUrl}${env} npx sageserve status`,
        `                nats --server ${natsUrl}${auth ? ` --nkey ${auth.seeds.operator} --inbox-prefix _INBOX_operator` : ""}${auth?.tls ? ` --tlsca ${auth.tls.caFile}` : ""} micro ls   ·   … sub 'sage.>'`,
        load && spec.load.ratePerSecond > 0
          ? `load            replaying the built-in workload at ~${spec.load.ratePerSecond} req/s through the gateway`
          : "load            none (--no-load)",
        durationSeconds > 0 ? `stopping in ${durationSeconds} s (or Ctrl-C)` : "Ctrl-C to stop",
      ].join("\n"),
    );
  }

  /** The built-in workload through the gateway (when it runs), its progress every 10 s, until stopped. */
  async runLoad(load: boolean, durationSeconds: number): Promise<void> {
    const gateway = this.url("gateway");
    if (load && gateway) {
      this.load = new LoadReplayer(gateway, this.spec, {});
      this.load.start();
    }
    const progress = setInterval(() => {
      if (!this.load) return;
      const s = this.load.stats;
      this.say(
        "load",
        { ...s },
        `requests        sent ${s.sent} · ok ${s.ok} · batch queued ${s.queued} · failed ${s.failed} · in flight ${s.inFlight}`,
      );
    }, 10_000);
    progress.unref();
    // The --duration timer is cleared when Ctrl-C comes first: left armed, it kept the process alive
    // after "stopped" until the duration ran out.
    let durationTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.interruptedP,
      ...(durationSeconds > 0
        ? [
            new Promise((r) => {
              durationTimer = setTimeout(r, durationSeconds * 1000);
            }),
          ]
        : []),
    ]);
    clearTimeout(durationTimer);
    clearInterval(progress);
  }

  /** Stop everything, once: load, services in reverse start order, timers, the spawned NATS. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      this.say(
        "stopping",
        {},
        "\nstopping: load, gateway, regions (engines), router, planner, dashboard, NATS…",
      );
      await this.load?.stop(15_000); // let requests in flight finish before the gateway closes
      for (const s of [...this.running].reverse()) await s.stop();
      this.clock.cancelAll();
      // Anything refused by the permissions shows in the server's log: report it, it is a bug or an attack.
      const server = this.nats.server;
      this.violations = server ? server.logs().flatMap(permissionViolations) : [];
      await server?.stop();
    })();
    return this.stopping;
  }

  /** The permission violations NATS logged, and the "stopped" event with the load's totals. */
  reportStopped(): void {
    const s = this.load?.stats;
    for (const v of this.violations)
      this.say("nats-violation", { ...v }, `NATS refused: ${v.connection} may not ${v.kind} '${v.subject}'`);
    this.say(
      "stopped",
      { load: s ?? null },
      s
        ? `stopped: ${s.sent} requests sent, ${s.ok} ok, ${s.queued} batch queued, ${s.failed} failed`
        : "stopped",
    );
  }

  private url(role: "gateway" | "dashboard"): string | undefined {
    return this.running.find((s) => s.def.role === role)?.url;
  }
}
