import {
  CapacityWanted,
  DemandReport,
  Heartbeat,
  InferenceChunk,
  InferenceRequest,
  KeyCache,
  LoadReport,
  NIW_STREAM,
  NiwJob,
  niwJobId,
  type Payload,
  Plan,
  pairKey,
  RequestCancel,
  RequestDone,
  RouteRequest,
  SageError,
  streamParams,
  validatePayload,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { DEMAND_WINDOW_MS, DemandLedger } from "./demand.js";
import { InstanceTable, type RoutableInstance } from "./instances.js";
import { finished, type Route, toInference, toNiwJob } from "./messages.js";
import { PlanRouting, type RouteShare } from "./plan-routing.js";
import {
  chooseInstance,
  chooseRegion,
  DEFAULT_ROUTER_CONFIG,
  endpointUtilization,
  type RouterConfig,
} from "./policy.js";

export interface RouterOptions {
  id?: string;
  /** Regions the router serves and may spill between. */
  regions: string[];
  /** Models the fleet serves; anything else is rejected as UNKNOWN_MODEL. */
  models: string[];
  config?: Partial<RouterConfig>;
  /** How long a request may wait for a serving instance before it is rejected. */
  maxPendingMs?: number;
  /**
   * Correct the demand history (DemandReport input tokens) with the engine's prompt counts from
   * RequestDone: a request is counted at arrival with the gateway's estimate (characters ÷ 4), and the
   * difference to the engine's count is added when it finishes (to the window then open). Live
   * clusters turn it on; a simulation, whose engines count what the workload says, leaves it off.
   */
  demandFromEngine?: boolean;
}

/**
 * Per-request routing: picks the region (home unless saturated) and the instance
 * (join-shortest-queue by queued tokens, then outstanding tokens, from load reports plus its
 * own routing since), forwards the request to that node, and sends NIW work to the
 * region's queue. Runs in the `router` queue group: any number of routers share
 * the load. A request with no serving instance waits (bounded), then is rejected
 * with NO_CAPACITY — never dropped silently.
 */
export class RouterActor extends Actor {
  private readonly cfg: RouterConfig;
  private readonly pending: { req: Route; sinceMs: number }[] = [];
  private readonly maxPendingMs: number;
  private readonly models: Set<string>;
  routed = 0;
  queued = 0;
  rejected = 0;
  /** Requests held because no instance could take them (cold starts), and how long they waited. */
  held = 0;
  /** Held requests whose client went away before an instance took them. */
  cancelled = 0;
  readonly heldWaitMs: number[] = [];
  /** Last CapacityWanted per "model|region". */
  private readonly wantedAtMs = new Map<string, number>();
  private readonly keys = new KeyCache();
  private readonly instances = new InstanceTable(this.keys);
  private readonly plan = new PlanRouting(this.keys, this.clock.rng(`router-${this.identity.id}-plan`));
  private readonly demand: DemandLedger;

  constructor(
    ctx: ActorContext,
    private readonly opts: RouterOptions,
  ) {
    super(ctx, {
      role: "router",
      id: opts.id ?? "router-1",
      description: "per-request region and instance routing",
    });
    this.cfg = { ...DEFAULT_ROUTER_CONFIG, ...opts.config };
    this.maxPendingMs = opts.maxPendingMs ?? 60_000;
    this.models = new Set(opts.models);
    this.demand = new DemandLedger(this.clock, this.keys, Boolean(opts.demandFromEngine));
  }
  protected async setup(): Promise<void> {
    this.on(LoadReport, {}, (r) => this.onLoad(r), { broadcast: true });
    this.on(Heartbeat, {}, (hb) => this.instances.applyHeartbeat(hb, this.clock.now()), { broadcast: true });
    this.on(Plan, {}, (p) => this.plan.apply(p), { broadcast: true });
    this.handle(RouteRequest, {}, (req) => {
      // Count arrivals once (re-routes of the same request come back as RouteRequests too).
      // Unknown models are rejected below and not counted: random names must not grow the demand map.
      if (req.attempt === undefined && this.models.has(req.model)) this.demand.count(req);
      const out = this.route(req);
      if (out !== undefined) return out;
      // No serving instance anywhere yet (e.g. all booting, or scaled to zero): hold it, say so, and
      // tell the region agent that traffic is waiting (an endpoint at zero instances scales up on it).
      this.pending.push({ req, sinceMs: this.clock.now() });
      this.held++;
      this.announceWanted(req.model, req.originRegion, true);
      return { requestId: req.requestId, decision: "queued" as const, region: req.originRegion };
    });
    this.on(RequestCancel, {}, (c) => this.cancelHeld(c.requestId), { broadcast: true });
    if (this.opts.demandFromEngine)
      this.on(RequestDone, {}, (d) => this.demand.correct(d.requestId, d.inputTokens), { broadcast: true });
    this.every(5_000, () => this.retryPending());
    this.demand.startWindow(this.clock.now());
    this.every(DEMAND_WINDOW_MS, () => this.reportDemand());
    // A router that (re)starts mid-window routes by the current plan at once, not after the next one.
    const latest = await this.kvGet("sage-plans", "latest");
    if (latest.ok && latest.value !== undefined && this.plan.isEmpty) {
      const plan = validatePayload(Plan, latest.value);
      if (plan.ok) this.plan.apply(plan.value);
    }
  }

  /** The plan's routing fractions this router follows, per "model|origin region". */
  planRoutes(): Record<string, RouteShare[]> {
    return this.plan.snapshot();
  }

  private onLoad(r: Payload<typeof LoadReport>): void {
    this.instances.applyLoad(r);
    if (this.pending.length && r.state === "serving") this.retryPending();
  }

  /** Instances this router would route `model` to right now, by region (for operators and tests). */
  routableInstances(model?: string): RoutableInstance[] {
    return this.instances.routable(model, this.clock.now(), this.cfg);
  }

  /** Route one request: a reply, a rejection, or undefined when no instance can take it now. */
  private route(req: Route) {
    if (!this.models.has(req.model)) {
      this.rejected++;
      return new SageError(
        "UNKNOWN_MODEL",
        `model '${req.model}' is not served (serving: ${[...this.models].join(", ")})`,
      );
    }
    const now = this.clock.now();
    if (req.tier === "niw" && this.cfg.niwMode === "queue") return this.queueNiw(req, now);
    return this.placeOnInstance(req, now);
  }

  /** NIW work in queue mode: a durable job in the origin region's queue, for its region agent to release. */
  private queueNiw(req: Route, now: number) {
    // Derived from the request id: unique across routers and restarts, and the same job if re-queued.
    const jobId = niwJobId(req.requestId);
    // Durable: the job stays in the queue until a region agent has released it, whatever restarts.
    this.durablePublish(
      NIW_STREAM,
      NiwJob,
      { region: req.originRegion, model: req.model },
      toNiwJob(req, jobId, now),
    );
    this.queued++;
    return { requestId: req.requestId, decision: "queued" as const, region: req.originRegion, jobId };
  }

  /** Pick the region and the instance and forward the request to its node; undefined when none can take it. */
  private placeOnInstance(req: Route, now: number) {
    const pool = this.cfg.niwMode === "pool" ? (req.tier === "niw" ? "niw" : "iw") : undefined;
    // A re-route after a lost node or engine never goes back to the nodes it failed on.
    const avoid = req.avoidNodes?.length ? new Set(req.avoidNodes) : undefined;
    const home = this.plan.regionFor(req.model, req.originRegion);
    // Where this request may run at all: home and the regions it may spill to (all, unless configured).
    const spill = this.cfg.spillTargets?.[home];
    const reachable = spill ? [home, ...spill.filter((r) => r !== home)] : this.opts.regions;
    // The home endpoint's instances are looked up once: most requests stay home.
    const homeCandidates = this.instances.candidates(req.model, home, pool, avoid);
    const candidatesIn = (r: string) =>
      r === home ? homeCandidates : this.instances.candidates(req.model, r, pool, avoid);
    const region = chooseRegion(
      home,
      (r) => endpointUtilization(candidatesIn(r), now, this.cfg),
      this.opts.regions,
      this.cfg,
    );
    const tokens = req.inputTokens + req.maxOutputTokens;
    const target =
      chooseInstance(candidatesIn(region), now, this.cfg, tokens) ??
      // Saturated or empty region: any reachable region with a serving instance beats waiting.
      reachable
        .map((r) =>
          chooseInstance(this.instances.candidates(req.model, r, pool, avoid), now, this.cfg, tokens),
        )
        .find((v) => v !== undefined);
    if (!target) return undefined;
    target.routedTokens += req.inputTokens + req.maxOutputTokens;
    target.routedRequests++;
    this.routed++;
    this.publish(InferenceRequest, { node: target.nodeId }, toInference(req, target.instanceId));
    return {
      requestId: req.requestId,
      decision: "instance" as const,
      region: target.region,
      instanceId: target.instanceId,
      nodeId: target.nodeId,
    };
  }

  /** Publish last minute's arrivals per model and origin region (zeros included, so series stay continuous). */
  private reportDemand(): void {
    const start = this.demand.closeWindow();
    for (const model of this.opts.models) {
      for (const region of this.opts.regions) {
        const d = this.demand.counted(model, region);
        this.publish(
          DemandReport,
          { region, model },
          {
            region,
            model,
            windowStartMs: start,
            windowMs: DEMAND_WINDOW_MS,
            byTier: d,
            source: this.identity.id,
          },
        );
      }
    }
    this.demand.clear();
  }

  /** Tell the endpoint's region agent requests are held for it (at most every 5 s, unless `first`). */
  private announceWanted(model: string, region: string, first: boolean): void {
    const k = pairKey(model, region);
    const now = this.clock.now();
    const last = this.wantedAtMs.get(k);
    if (last !== undefined && now - last < 5_000 && !(first && now - last >= 1_000)) return;
    this.wantedAtMs.set(k, now);
    let held = 0;
    let oldest = now;
    for (const p of this.pending) {
      if (p.req.model !== model || p.req.originRegion !== region) continue;
      held++;
      oldest = Math.min(oldest, p.req.arrivalMs);
    }
    this.publish(
      CapacityWanted,
      { region, model },
      { region, model, held, oldestMs: oldest, atMs: now, source: this.identity.id },
    );
  }

  /** The client went away: a request still held here is dropped (a placed one is the node's to cancel). */
  private cancelHeld(requestId: string): void {
    const i = this.pending.findIndex((p) => p.req.requestId === requestId);
    if (i < 0) return;
    const [p] = this.pending.splice(i, 1);
    this.cancelled++;
    this.publish(
      RequestDone,
      { region: p!.req.originRegion, model: p!.req.model },
      {
        ...finished(p!.req, this.clock.now()),
        outcome: "cancelled",
      },
    );
  }

  private retryPending(): void {
    if (!this.pending.length) return;
    const now = this.clock.now();
    const still: typeof this.pending = [];
    for (const p of this.pending.splice(0)) {
      if (this.route(p.req) !== undefined) {
        this.heldWaitMs.push(now - p.sinceMs);
        continue;
      }
      if (now - p.sinceMs < this.maxPendingMs) {
        still.push(p);
        continue;
      }
      this.rejectHeld(p.req, now);
    }
    this.pending.push(...still);
    for (const k of new Set(still.map((p) => pairKey(p.req.model, p.req.originRegion)))) {
      const [model, region] = k.split("|") as [string, string];
      this.announceWanted(model, region, false);
    }
  }

  /** A held request waited `maxPendingMs` for an instance in vain: it fails with NO_CAPACITY. */
  private rejectHeld(req: Route, now: number): void {
    this.rejected++;
    // Whoever waits for its tokens (the gateway) learns at once, instead of at its first-token timeout.
    this.publish(InferenceChunk, streamParams(req), {
      requestId: req.requestId,
      seq: 0,
      tokens: 0,
      done: true,
      finishReason: "error",
      error: {
        code: "NO_CAPACITY",
        message: `no serving instance of ${req.model} reachable from ${req.originRegion} within ${this.maxPendingMs} ms`,
      },
    });
    this.publish(
      RequestDone,
      { region: req.originRegion, model: req.model },
      { ...finished(req, now), outcome: "failed" },
    );
  }

  get pendingCount(): number {
    return this.pending.length;
  }
}
