/**
 * The global planner actor: it keeps the demand history and the current allocation from the bus, and on
 * its schedule (or when demand outruns the forecast, or a region is lost) forecasts the window, solves the
 * capacity ILP and publishes the plan. The pieces it is made of live beside it: the options
 * (`planner-options.ts`), the demand history (`demand-history.ts`), the snapshot inputs
 * (`planning-input.ts`), the ILP (`ilp.ts`) and what a solved plan becomes (`plan-output.ts`).
 */
import {
  type CapacityModel,
  DemandReport,
  type LengthMix,
  LoadReport,
  type Payload,
  Plan,
  PlanRequest,
  pairKey,
  RegionStatus,
  tripleKey,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { DemandHistory, recentIw, type SeriesState } from "./demand-history.js";
import { type ForecastRecord, judgeForecasts } from "./forecast-errors.js";
import { type PlanResult, solvePlan } from "./ilp.js";
import { planMessage, postProcessTargets } from "./plan-output.js";
import {
  type PlannerOptions,
  type ResolvedPlannerOptions,
  resolvePlannerOptions,
} from "./planner-options.js";
import {
  currentInstances,
  deadlineRate,
  forecastProfile,
  type InstanceSeen,
  PROFILE_BIN_MINUTES,
  planningCapacity,
  planningConfig,
  planningSupply,
  valleyBuckets,
  valleyFillRate,
  type WindowDemand,
} from "./planning-input.js";
import { trimToPools } from "./pools.js";
import { type PlanningSnapshot, PlanningSnapshotSchema } from "./snapshot.js";

/**
 * The global planner: collects per-minute demand from the routers and the
 * current allocation from load reports, forecasts each (model, region) series
 * for the next window, solves the capacity ILP, verifies it, and publishes the
 * plan. Runs on the clock's cron schedule (node-cron live, virtual in simulation).
 */
export class PlannerActor extends Actor {
  private readonly opts: ResolvedPlannerOptions;
  private readonly demand = new DemandHistory();
  private readonly instances = new Map<string, InstanceSeen>();
  private planSeq = 0;
  private lastPlanAtMs: number | undefined;
  private lastCheckedMinute: number | undefined;
  private replanning = false;
  /** Re-plans triggered by the planner itself (forecast error, region failure), with their reason. */
  readonly replans: { atMs: number; reason: string }[] = [];
  /** Every plan's forecast per series, judged once its window has passed (forecastErrors()). */
  readonly forecasts: ForecastRecord[] = [];
  /** Latest NIW backlog by deadline per "model|region" (RegionStatus), with when it was reported. */
  private readonly backlog = new Map<
    string,
    { atMs: number; buckets: { withinMinutes: number; tokens: number }[]; escalateBeforeMinutes: number }
  >();
  /** Regions whose every instance failed or stopped (no serving one left): planned with no supply. */
  private readonly downRegions = new Set<string>();
  private lastPlanId = "none";
  private previousDeltas = new Map<string, number>();
  readonly history: PlanResult[] = [];
  /** Forecast MAPE per series at the last plan. */
  readonly mape = new Map<string, number>();
  private capacityModel: CapacityModel | undefined;

  constructor(ctx: ActorContext, opts: PlannerOptions) {
    const resolved = resolvePlannerOptions(opts);
    super(ctx, { role: "planner", id: resolved.id, description: "forecast + ILP capacity plan" });
    this.opts = resolved;
  }

  protected async setup(): Promise<void> {
    this.on(DemandReport, {}, (d) => this.onDemand(d), { broadcast: true });
    this.on(
      LoadReport,
      {},
      (r) => {
        this.instances.set(r.instanceId, {
          model: r.model,
          region: r.region,
          gpu: r.gpuType,
          state: r.state,
        });
        this.checkRegion(r.region);
      },
      { broadcast: true },
    );
    this.on(
      RegionStatus,
      {},
      (st) => {
        for (const e of st.endpoints)
          this.backlog.set(pairKey(e.model, st.region), {
            atMs: this.clock.now(),
            buckets: e.niwBacklog ?? [],
            escalateBeforeMinutes: e.niwEscalateBeforeMinutes ?? 0,
          });
      },
      { broadcast: true },
    );
    this.handle(PlanRequest, {}, async (req) => {
      this.log.info({ reason: req.reason, by: req.requestedBy }, "re-planning on request");
      const r = await this.plan();
      return { planId: this.lastPlanId, status: r.status, targets: r.targets.length, solveMs: r.solveMs };
    });
    this.schedulePlans();
    // A restarted planner continues its plan sequence from the plan it left in KV: plan ids never repeat.
    const latest = await this.kvGet("sage-plans", "latest");
    const prev = latest.ok ? (latest.value as { planId?: unknown } | undefined)?.planId : undefined;
    const m =
      typeof prev === "string" && prev.startsWith(`${this.identity.id}-p`) ? /-p(\d+)$/.exec(prev) : null;
    if (m) this.planSeq = Math.max(this.planSeq, Number(m[1]) + 1);
  }

  /** The plan timers: every `intervalMinutes` or on the cron schedule, and the first plan after start-up. */
  private schedulePlans(): void {
    if (this.opts.intervalMinutes !== undefined) {
      if (!(this.opts.intervalMinutes > 0))
        throw new RangeError(`intervalMinutes must be positive, got ${this.opts.intervalMinutes}`);
      this.every(this.opts.intervalMinutes * 60_000, async () => {
        await this.plan();
      });
    } else {
      this.cron(this.opts.schedule, async () => {
        await this.plan();
      });
    }
    const first = this.opts.firstPlanAfterMs;
    if (first >= 0)
      this.after(first, async () => {
        if (this.lastPlanAtMs !== undefined) return;
        // Before any demand was seen there is nothing to forecast: the agents keep what they have.
        if (this.hasHistory()) await this.plan();
        else this.log.info({}, "no demand seen yet: no plan at start-up, the current allocation holds");
      });
  }

  /**
   * A region whose instances have all failed or stopped (after having served) is planned with no supply,
   * and the plan is redone at once so its demand is routed elsewhere; it rejoins when one serves again.
   */
  private checkRegion(region: string): void {
    let any = 0;
    let alive = 0;
    for (const i of this.instances.values()) {
      if (i.region !== region) continue;
      any++;
      if (i.state !== "failed" && i.state !== "stopped") alive++;
    }
    if (any === 0) return;
    if (alive === 0 && !this.downRegions.has(region)) {
      this.downRegions.add(region);
      this.replans.push({ atMs: this.clock.now(), reason: `region ${region} has no live instance` });
      if (!this.replanning) this.replanSoon();
    } else if (alive > 0 && this.downRegions.has(region)) {
      this.downRegions.delete(region);
    }
  }

  /** Plan with this capacity model from the next plan on (one measured after start-up, live). */
  useCapacityModel(cm: CapacityModel): void {
    this.capacityModel = cm;
  }

  /** Plan now, on the clock (so a simulation waits for it like any timer). */
  private replanSoon(): void {
    this.replanning = true;
    this.after(0, async () => {
      try {
        await this.plan();
      } finally {
        this.replanning = false;
      }
    });
  }

  /** Interactive length mix of a model over the last hour of demand (all regions). */
  private mixOfModel(model: string): LengthMix | undefined {
    return this.demand.mixOfModel(model, this.opts.regions);
  }

  private onDemand(d: Payload<typeof DemandReport>): void {
    this.checkForecast(this.demand.record(d));
  }

  /** A series running well above its forecast asks for a re-plan now rather than at the next window. */
  private checkForecast(minute: number): void {
    const bound = this.opts.replanOnForecastError;
    if (!(bound > 0) || this.lastPlanAtMs === undefined || this.replanning) return;
    const now = this.clock.now();
    if (now - this.lastPlanAtMs < this.opts.replanMinGapMs) return;
    if (minute === this.lastCheckedMinute) return;
    this.lastCheckedMinute = minute;
    this.flush(minute); // minutes before this report's are complete (a late router's share is dropped)
    for (const [k, s] of this.demand.series) {
      if (s.forecastIw === undefined) continue;
      const recent = s.iw.values.slice(-10);
      if (recent.length < 10) continue;
      const observed = recent.reduce((a, b) => a + b, 0) / recent.length;
      if (observed > (1 + bound) * Math.max(s.forecastIw, 1e-9) && observed > 0) {
        this.replanning = true;
        this.replans.push({
          atMs: now,
          reason: `demand of ${k} ${Math.round(observed)} tokens/s vs forecast ${Math.round(s.forecastIw)}`,
        });
        this.replanSoon();
        return;
      }
    }
  }

  /** Move complete minutes (before the current one) into the series, then judge the forecasts whose windows have passed. */
  private flush(nowMinute: number): void {
    this.demand.flush(nowMinute);
    judgeForecasts(this.forecasts, this.demand.series, nowMinute);
  }

  /** Minutes between plans (the cron schedule is taken as hourly). */
  get intervalMinutes(): number {
    return this.opts.intervalMinutes ?? 60;
  }

  /** Whether any series has demand history (a plan before that would plan for nothing). */
  hasHistory(): boolean {
    return this.demand.hasHistory();
  }

  /** Forecast the window, solve the capacity ILP, and publish the plan (also kept in KV). */
  async plan(): Promise<PlanResult> {
    const now = this.clock.now();
    this.flush(Math.floor(now / 60_000));
    this.lastPlanAtMs = now;
    const cm = this.capacityModel ?? this.opts.capacityModel;
    const window = this.forecastWindow(now, cm);
    const snapshot = this.planningSnapshot(window, cm);
    const result = await solvePlan(snapshot, this.opts.solve);
    this.history.push(result);
    const targets = this.targetsToPublish(result, snapshot, cm);
    const planId = `${this.identity.id}-p${this.planSeq++}`;
    this.lastPlanId = planId;
    const { strategy, postProcess } = this.opts;
    const payload = planMessage(
      planId,
      now,
      this.intervalMinutes,
      `${strategy}${postProcess && postProcess !== "immediate" ? `+${postProcess}` : ""}`,
      targets,
      result,
      window,
    );
    this.publish(Plan, {}, payload);
    // The latest plan is also kept in KV, so a region agent that starts mid-hour can fetch it.
    await this.kvPut("sage-plans", "latest", { ...payload, v: Plan.version });
    this.log.info(
      { status: result.status, solveMs: Math.round(result.solveMs), targets: result.targets.length },
      "published plan",
    );
    return result;
  }

  /** Every series' demand forecast for [now, now + interval + lead), in model then region order. */
  private forecastWindow(now: number, cm: CapacityModel | undefined): WindowDemand {
    const horizon = this.intervalMinutes + this.opts.leadMinutes;
    const window: WindowDemand = { demand: [], forecast: [], niw: [] };
    for (const model of this.opts.models)
      for (const region of this.opts.regions) this.forecastSeries(model, region, now, horizon, cm, window);
    return window;
  }

  /** One series' forecast: recorded for judging, and added to the window's demand, forecast and batch plan. */
  private forecastSeries(
    model: string,
    region: string,
    now: number,
    horizon: number,
    cm: CapacityModel | undefined,
    window: WindowDemand,
  ): void {
    const bias = this.opts.forecastBias;
    const s = this.demand.state(model, region);
    const iw = s.iw.forecast(0, horizon);
    const niw = s.niw.forecast(0, horizon);
    if (iw.mape !== undefined) this.mape.set(pairKey(model, region), iw.mape);
    this.forecasts.push({
      model,
      region,
      fromMs: now,
      toMs: now + horizon * 60_000,
      forecast: iw.mean + niw.mean,
    });
    // Never plan below what the series measures now: a forecast that lags a ramp must not take
    // capacity away from traffic that is already here.
    const iwTps = Math.max((this.opts.forecastStat === "peak" ? iw.peak : iw.mean) * bias, recentIw(s, 5));
    const niwTps = niw.mean * bias;
    s.forecastIw = iwTps;
    // The backlog's deadlines decide the batch capacity when the region reports them (recently).
    const rate = this.backlogRate(model, region, now, s, horizon);
    // Batch work has no TTFT target: it may use an instance up to its knee, so it costs the plan only
    // the target utilisation's share of a planned instance per token (the interactive headroom).
    const required = rate === undefined ? undefined : rate * (cm?.targetUtilization ?? 1);
    if (rate) window.niw.push({ model, region, tokensPerSecond: Math.round(rate) });
    window.demand.push({
      model,
      region,
      iwTokensPerSecond: iwTps,
      niwTokensPerSecond: niwTps,
      ...(required !== undefined ? { niwRequiredTokensPerSecond: required } : {}),
    });
    const profile = forecastProfile(iw.points ?? [], bias);
    window.forecast.push({
      model,
      region,
      tokensPerSecond: Math.round(iwTps + niwTps),
      ...(profile.length ? { profile, binMinutes: PROFILE_BIN_MINUTES } : {}),
    });
  }

  /**
   * Batch tokens/s the series' backlog needs this window, when its region reported it in the last 10
   * minutes: spread over the hours to its deadlines where the interactive forecast is lowest (valley
   * filling) once the series has a day of history to forecast its daily shape from, else evenly.
   */
  private backlogRate(
    model: string,
    region: string,
    now: number,
    s: SeriesState,
    windowMinutes: number,
  ): number | undefined {
    const b = this.backlog.get(pairKey(model, region));
    if (!b || now - b.atMs > 10 * 60_000) return undefined;
    // Released before the agent's escalation point, not just before the deadline: a job that reaches it
    // goes out whatever the load — into the next peak, when a day's backlog is paced just in time.
    const margin = this.opts.niwDeadlineMarginMinutes + b.escalateBeforeMinutes;
    if (!this.opts.niwValleyFill || s.iw.length < 1440) return deadlineRate(b.buckets, margin);
    const horizon = Math.min(
      7 * 1440,
      Math.max(0, ...valleyBuckets(b.buckets, margin).map((x) => x.minutes)),
    );
    const bias = this.opts.forecastBias;
    const points = s.iw.forecastWith(s.iw.best(), 0, Math.max(1, horizon)).points ?? [];
    return valleyFillRate(
      b.buckets,
      points.map((x) => x * bias),
      margin,
      windowMinutes,
    );
  }

  /** The ILP's input: the window's demand, the current allocation, and the capacity, supply and config to plan with. */
  private planningSnapshot(window: WindowDemand, cm: CapacityModel | undefined): PlanningSnapshot {
    const current = currentInstances(this.instances.values());
    const capacity = planningCapacity(this.opts, cm, window.demand, (m) => this.mixOfModel(m));
    const supply = planningSupply(this.opts.supply, this.downRegions);
    const config = planningConfig(this.opts.config, cm);
    return PlanningSnapshotSchema.parse({
      capacity,
      gpuTypes: this.opts.gpuTypes,
      supply,
      demand: window.demand,
      current,
      routes: this.opts.routes,
      ...(config ? { config } : {}),
    });
  }

  /** The solved targets trimmed to pool sizes (with a capacity model) and post-processed; remembers their deltas. */
  private targetsToPublish(result: PlanResult, snapshot: PlanningSnapshot, cm: CapacityModel | undefined) {
    const solved = cm
      ? trimToPools(result.targets, result.routing, snapshot, cm, (m) => this.mixOfModel(m))
      : result.targets;
    const targets = postProcessTargets(solved, this.opts.postProcess, this.previousDeltas);
    this.previousDeltas = new Map(solved.map((t) => [tripleKey(t.model, t.region, t.gpu), t.delta]));
    return targets;
  }
}
