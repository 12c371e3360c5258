import {
  CapacityWanted,
  DEFAULT_NIW_DEADLINE_MS,
  DemandReport,
  Heartbeat,
  InferenceChunk,
  InferenceRequest,
  KeyCache,
  LoadReport,
  NIW_STREAM,
  NiwJob,
  type Payload,
  Plan,
  RequestCancel,
  RequestDone,
  RouteRequest,
  SageError,
  streamParams,
  type Tier,
  validatePayload,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import {
  chooseInstance,
  chooseRegion,
  DEFAULT_ROUTER_CONFIG,
  endpointUtilization,
  type InstanceView,
  isRoutable,
  type RouterConfig,
} from "./policy.js";

type Route = Payload<typeof RouteRequest>;

/**
 * The InferenceRequest that hands `req` to an instance: every RouteRequest field (optional ones only when
 * set) and the instance. Written out rather than `{ ...req, instanceId }`, which was ~3 % of a paper-scale
 * simulation; router.test checks that no RouteRequest field is left behind.
 */
export function toInference(req: Route, instanceId: string): Payload<typeof InferenceRequest> {
  const out: Payload<typeof InferenceRequest> = {
    requestId: req.requestId,
    model: req.model,
    tier: req.tier,
    originRegion: req.originRegion,
    inputTokens: req.inputTokens,
    maxOutputTokens: req.maxOutputTokens,
    arrivalMs: req.arrivalMs,
    stream: req.stream,
    instanceId,
  };
  if (req.deadlineMs !== undefined) out.deadlineMs = req.deadlineMs;
  if (req.attempt !== undefined) out.attempt = req.attempt;
  if (req.avoidNodes !== undefined) out.avoidNodes = req.avoidNodes;
  if (req.body !== undefined) out.body = req.body;
  if (req.streamTo !== undefined) out.streamTo = req.streamTo;
  if (req.resultKey !== undefined) out.resultKey = req.resultKey;
  return out;
}

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
  private readonly views = new Map<string, InstanceView>();
  private readonly byEndpoint = new Map<string, InstanceView[]>();
  /** Per node: its last heartbeat's arrival plus its ttlMs (silence past it = the node is gone). */
  private readonly nodeAliveUntil = new Map<string, number>();
  private readonly pending: { req: Route; sinceMs: number }[] = [];
  /** With `demandFromEngine`: requests counted at arrival and not finished yet (kept 10 minutes at most). */
  private readonly estimates = new Map<string, { req: Route; atMs: number }>();
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
  /** Arrivals of the current minute per "model|region", by tier: the planner's demand history. */
  private readonly demand = new Map<
    string,
    Record<Tier, { requests: number; inputTokens: number; outputTokens: number }>
  >();
  private demandWindowStartMs = 0;
  /** The latest plan's routing fractions per "model|origin": where interactive work should go. */
  private planRouting = new Map<string, { to: string; fraction: number }[]>();
  private readonly pickRng = this.clock.rng(`router-${this.identity.id}-plan`);

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
  }

  protected async setup(): Promise<void> {
    this.on(LoadReport, {}, (r) => this.onLoad(r), { broadcast: true });
    this.on(Heartbeat, {}, (hb) => this.onHeartbeat(hb), { broadcast: true });
    this.on(Plan, {}, (p) => this.applyPlan(p), { broadcast: true });
    this.handle(RouteRequest, {}, (req) => {
      // Count arrivals once (re-routes of the same request come back as RouteRequests too).
      // Unknown models are rejected below and not counted: random names must not grow the demand map.
      if (req.attempt === undefined && this.models.has(req.model)) this.countDemand(req);
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
      this.on(RequestDone, {}, (d) => this.correctDemand(d.requestId, d.inputTokens), { broadcast: true });
    this.every(5_000, () => this.retryPending());
    this.demandWindowStartMs = Math.floor(this.clock.now() / 60_000) * 60_000;
    this.every(60_000, () => this.reportDemand());
    // A router that (re)starts mid-window routes by the current plan at once, not after the next one.
    const latest = await this.kvGet("sage-plans", "latest");
    if (latest.ok && latest.value !== undefined && this.planRouting.size === 0) {
      const plan = validatePayload(Plan, latest.value);
      if (plan.ok) this.applyPlan(plan.value);
    }
  }

  private applyPlan(p: Payload<typeof Plan>): void {
    const m = new Map<string, { to: string; fraction: number }[]>();
    for (const r of p.routing) {
      const k = `${r.model}|${r.from}`;
      m.set(k, [...(m.get(k) ?? []), { to: r.to, fraction: r.fraction }]);
    }
    this.planRouting = m;
  }

  /** The plan's routing fractions this router follows, per "model|origin region". */
  planRoutes(): Record<string, { to: string; fraction: number }[]> {
    return Object.fromEntries(this.planRouting);
  }

  private readonly keys = new KeyCache();

  private key(model: string, region: string, pool: string | undefined): string {
    return this.keys.key3(model, region, pool ?? "");
  }

  private onLoad(r: Payload<typeof LoadReport>): void {
    let v = this.views.get(r.instanceId);
    const endpointChanged = !v || v.model !== r.model || v.pool !== r.pool || v.region !== r.region;
    if (v && endpointChanged) this.removeView(v);
    if (!v || endpointChanged) {
      v = {
        instanceId: r.instanceId,
        nodeId: r.nodeId,
        region: r.region,
        model: r.model,
        pool: r.pool,
        state: r.state,
        kvUtilization: r.kvUtilization,
        kvCapacityTokens: r.kvCapacityTokens ?? 0,
        outstandingTokens: r.outstandingTokens,
        reportedAtMs: r.atMs,
        running: r.running,
        waiting: r.waiting,
        maxRunning: r.maxRunning,
        iwFastWaitMs: r.iwFastWaitMs,
        iwNormalWaitMs: r.iwNormalWaitMs,
        iwRps: r.iwRps,
        iwCapacityRps: r.iwCapacityRps,
        routedTokens: 0,
        routedRequests: 0,
        aliveUntilMs: this.nodeAliveUntil.get(r.nodeId),
      };
      this.views.set(r.instanceId, v);
      const k = this.key(r.model, r.region, r.pool);
      const list = this.byEndpoint.get(k);
      if (list) list.push(v);
      else this.byEndpoint.set(k, [v]);
    } else {
      v.state = r.state;
      v.kvUtilization = r.kvUtilization;
      v.kvCapacityTokens = r.kvCapacityTokens ?? v.kvCapacityTokens;
      v.outstandingTokens = r.outstandingTokens;
      v.reportedAtMs = r.atMs;
      v.running = r.running;
      v.waiting = r.waiting;
      v.maxRunning = r.maxRunning;
      v.iwFastWaitMs = r.iwFastWaitMs;
      v.iwNormalWaitMs = r.iwNormalWaitMs;
      v.iwRps = r.iwRps;
      v.iwCapacityRps = r.iwCapacityRps;
      v.routedTokens = 0;
      v.routedRequests = 0;
    }
    if (this.pending.length && r.state === "serving") this.retryPending();
  }

  /**
   * Node liveness: an instance whose node has been silent for its heartbeat TTL leaves routing at once,
   * long before its last load report would go stale (a SIGKILLed node agent says nothing more).
   */
  private onHeartbeat(hb: Payload<typeof Heartbeat>): void {
    const until = this.clock.now() + hb.ttlMs;
    this.nodeAliveUntil.set(hb.nodeId, until);
    for (const i of hb.instances) {
      const v = this.views.get(i.instanceId);
      if (v && v.nodeId === hb.nodeId) v.aliveUntilMs = until;
    }
  }

  /** Instances this router would route `model` to right now, by region (for operators and tests). */
  routableInstances(model?: string): { instanceId: string; nodeId: string; region: string }[] {
    const now = this.clock.now();
    return [...this.views.values()]
      .filter((v) => (model === undefined || v.model === model) && isRoutable(v, now, this.cfg))
      .map((v) => ({ instanceId: v.instanceId, nodeId: v.nodeId, region: v.region }))
      .sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
  }

  private removeView(v: InstanceView): void {
    const list = this.byEndpoint.get(this.key(v.model, v.region, v.pool));
    if (list) list.splice(list.indexOf(v), 1);
    this.views.delete(v.instanceId);
  }

  private candidates(
    model: string,
    region: string,
    pool: string | undefined,
    avoid?: ReadonlySet<string>,
  ): InstanceView[] {
    const all = this.byEndpoint.get(this.key(model, region, pool)) ?? [];
    return avoid?.size ? all.filter((v) => !avoid.has(v.nodeId)) : all;
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
    if (req.tier === "niw" && this.cfg.niwMode === "queue") {
      // Derived from the request id: unique across routers and restarts, and the same job if re-queued.
      const jobId = `j-${req.requestId}`;
      // Durable: the job stays in the queue until a region agent has released it, whatever restarts.
      this.durablePublish(
        NIW_STREAM,
        NiwJob,
        { region: req.originRegion, model: req.model },
        {
          jobId,
          requestId: req.requestId,
          model: req.model,
          originRegion: req.originRegion,
          inputTokens: req.inputTokens,
          maxOutputTokens: req.maxOutputTokens,
          arrivalMs: req.arrivalMs,
          deadlineMs: req.deadlineMs ?? req.arrivalMs + DEFAULT_NIW_DEADLINE_MS,
          enqueuedAtMs: now,
          ...(req.attempt === undefined ? {} : { attempt: req.attempt }),
          ...(req.body === undefined ? {} : { body: req.body }),
          ...(req.streamTo === undefined ? {} : { streamTo: req.streamTo }),
          ...(req.resultKey === undefined ? {} : { resultKey: req.resultKey }),
        },
      );
      this.queued++;
      return { requestId: req.requestId, decision: "queued" as const, region: req.originRegion, jobId };
    }
    const pool = this.cfg.niwMode === "pool" ? (req.tier === "niw" ? "niw" : "iw") : undefined;
    // A re-route after a lost node or engine never goes back to the nodes it failed on.
    const avoid = req.avoidNodes?.length ? new Set(req.avoidNodes) : undefined;
    const home = this.plannedRegion(req.model, req.originRegion);
    // Where this request may run at all: home and the regions it may spill to (all, unless configured).
    const spill = this.cfg.spillTargets?.[home];
    const reachable = spill ? [home, ...spill.filter((r) => r !== home)] : this.opts.regions;
    // The home endpoint's instances are looked up once: most requests stay home.
    const homeCandidates = this.candidates(req.model, home, pool, avoid);
    const candidatesIn = (r: string) =>
      r === home ? homeCandidates : this.candidates(req.model, r, pool, avoid);
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
        .map((r) => chooseInstance(this.candidates(req.model, r, pool, avoid), now, this.cfg, tokens))
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

  private countDemand(req: Route): void {
    const k = this.keys.key(req.model, req.originRegion);
    let d = this.demand.get(k);
    if (!d) {
      const z = () => ({ requests: 0, inputTokens: 0, outputTokens: 0 });
      d = { "iw-fast": z(), "iw-normal": z(), niw: z() };
      this.demand.set(k, d);
    }
    const t = d[req.tier];
    t.requests++;
    t.inputTokens += req.inputTokens;
    t.outputTokens += req.maxOutputTokens;
    if (this.opts.demandFromEngine) this.estimates.set(req.requestId, { req, atMs: this.clock.now() });
  }

  /** A request this router counted finished: its engine's prompt count replaces the estimate. */
  private correctDemand(requestId: string, engineInputTokens: number): void {
    // Re-routed attempts finish under `<request>-a<n>`; the arrival was counted under `<request>`.
    const id = requestId.replace(/-a\d+$/, "");
    const e = this.estimates.get(id);
    if (!e) return;
    this.estimates.delete(id);
    const delta = engineInputTokens - e.req.inputTokens;
    if (delta === 0) return;
    const k = `${e.req.model}|${e.req.originRegion}`;
    if (!this.demand.has(k)) {
      const z = () => ({ requests: 0, inputTokens: 0, outputTokens: 0 });
      this.demand.set(k, { "iw-fast": z(), "iw-normal": z(), niw: z() });
    }
    const t = this.demand.get(k)![e.req.tier];
    t.inputTokens = Math.max(0, t.inputTokens + delta);
  }

  /** Publish last minute's arrivals per model and origin region (zeros included, so series stay continuous). */
  private reportDemand(): void {
    const start = this.demandWindowStartMs;
    for (const [id, e] of this.estimates) {
      if (this.clock.now() - e.atMs < 600_000) break;
      this.estimates.delete(id);
    }
    this.demandWindowStartMs += 60_000;
    for (const model of this.opts.models) {
      for (const region of this.opts.regions) {
        const k = `${model}|${region}`;
        const z = { requests: 0, inputTokens: 0, outputTokens: 0 };
        const d = this.demand.get(k) ?? { "iw-fast": z, "iw-normal": z, niw: z };
        this.publish(
          DemandReport,
          { region, model },
          { region, model, windowStartMs: start, windowMs: 60_000, byTier: d, source: this.identity.id },
        );
      }
    }
    this.demand.clear();
  }

  /** The plan's routing fractions, when present, pick the region interactive work starts from. */
  private plannedRegion(model: string, origin: string): string {
    if (this.planRouting.size === 0) return origin;
    const split = this.planRouting.get(this.keys.key(model, origin));
    if (!split || split.length < 2) return split?.[0]?.to ?? origin;
    let u = this.pickRng.next();
    for (const s of split) {
      u -= s.fraction;
      if (u < 0) return s.to;
    }
    return split[split.length - 1]!.to;
  }

  /** Tell the endpoint's region agent requests are held for it (at most every 5 s, unless `first`). */
  private announceWanted(model: string, region: string, first: boolean): void {
    const k = `${model}|${region}`;
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
      this.rejected++;
      // Whoever waits for its tokens (the gateway) learns at once, instead of at its first-token timeout.
      this.publish(InferenceChunk, streamParams(p.req), {
        requestId: p.req.requestId,
        seq: 0,
        tokens: 0,
        done: true,
        finishReason: "error",
        error: {
          code: "NO_CAPACITY",
          message: `no serving instance of ${p.req.model} reachable from ${p.req.originRegion} within ${this.maxPendingMs} ms`,
        },
      });
      this.publish(
        RequestDone,
        { region: p.req.originRegion, model: p.req.model },
        { ...finished(p.req, now), outcome: "failed" },
      );
    }
    this.pending.push(...still);
    for (const k of new Set(still.map((p) => `${p.req.model}|${p.req.originRegion}`))) {
      const [model, region] = k.split("|") as [string, string];
      this.announceWanted(model, region, false);
    }
  }

  get pendingCount(): number {
    return this.pending.length;
  }
}

/** The RequestDone of a held request that never reached an instance (its outcome to be set). */
function finished(req: Route, nowMs: number) {
  return {
    requestId: req.requestId,
    model: req.model,
    tier: req.tier,
    region: req.originRegion,
    instanceId: "-",
    inputTokens: req.inputTokens,
    outputTokens: 0,
    arrivalMs: req.arrivalMs,
    ttftMs: 0,
    tbtMs: 0,
    e2eMs: nowMs - req.arrivalMs,
  };
}
