import {
  type CapacityModel,
  DemandReport,
  type LengthMix,
  LoadReport,
  type Payload,
  type PayloadIn,
  Plan,
  PlanRequest,
  RegionStatus,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { DemandSeries } from "./forecast.js";
import { type PlanResult, solvePlan } from "./ilp.js";
import type { SolveOptions } from "./lp.js";
import { trimToPools } from "./pools.js";
import { type PlanningSnapshotInput, PlanningSnapshotSchema } from "./snapshot.js";

export interface PlannerOptions {
  id?: string;
  models: string[];
  regions: string[];
  /**
   * Per-instance capacity (tokens/s) by model and GPU type. Used as given when there is no
   * `capacityModel`; with one, only as the fallback for a model the capacity model does not know.
   */
  capacity: Record<string, Record<string, number>>;
  /**
   * The SLO capacity model (the one the region agents count instances with): each plan's ILP
   * coefficients are its planned tokens/s per instance for each model's measured length mix (the last
   * hour of interactive demand), GPU types it has no point for are not eligible, and the snapshot's
   * headroom defaults to 0 (the model's target utilisation is the headroom).
   */
  capacityModel?: CapacityModel;
  gpuTypes: { id: string; pricePerHour: number; gpusPerVm?: number }[];
  supply: Record<string, Record<string, number>>;
  routes?: Record<string, string[]>;
  /** When to plan (cron, UTC). Default hourly at minute 0; ignored when `intervalMinutes` is set. */
  schedule?: string;
  /** Plan every this many minutes from start-up instead of on the cron schedule. */
  intervalMinutes?: number;
  /**
   * First plan this long after start-up (default 2 minutes: the first demand reports are in). Before
   * any demand was seen the plan holds the current allocation. Negative: no plan at start-up.
   */
  firstPlanAfterMs?: number;
  /**
   * How far ahead of a window capacity must be up: the forecast covers [now, now + interval + lead], so
   * a ramp early in the next window is already provisioned for (default 5 minutes: boot + load).
   */
  leadMinutes?: number;
  /**
   * Re-plan at once (at most every `replanMinGapMs`, default 15 min) when a series' demand over the last
   * 10 minutes exceeds its forecast by this fraction (default 0.5; 0 disables).
   */
  replanOnForecastError?: number;
  replanMinGapMs?: number;
  /**
   * Plan batch capacity from the NIW backlog by deadline (the region agents' status): enough tokens/s
   * this window for every queued job to finish this many minutes before its deadline (default 60).
   * Without backlog reports the plan keeps the flat `niwShare` of the NIW forecast.
   */
  niwDeadlineMarginMinutes?: number;
  /** Strategy name carried in the plan for the region agents (lt-i, lt-u, lt-ua, …). */
  strategy: string;
  /** Plan for the window's peak minute (the reference) or its mean. */
  forecastStat?: "peak" | "mean";
  /** Multiply every forecast by this (sensitivity studies: 1.2 = 20 % over-forecast). Default 1. */
  forecastBias?: number;
  config?: PlanningSnapshotInput["config"];
  /**
   * Solver limits: gap, wall clock, work budget (`maxNodes`, `maxIterations`). The simulator sets
   * `deterministic`, so that plans depend on work done, never on how fast the machine is.
   */
  solve?: SolveOptions;
  /**
   * Post-processing of the ILP's targets before they are published (the reference lists these; only
   * "immediate" exists in its code): "delay-changes" applies a change only when the previous plan
   * proposed a change in the same direction for that (model, region, GPU type); "keep-max" never lowers
   * a target below the current allocation; "keep-min" never raises it (scale-ups stay reactive).
   */
  postProcess?: PostProcess;
}

export type PostProcess = "immediate" | "delay-changes" | "keep-max" | "keep-min";

/** Apply a post-processing strategy to plan targets (pure). `previous`: last plan's deltas by "model|region|gpu". */
export function postProcessTargets(
  targets: { model: string; region: string; gpu: string; instances: number; delta: number }[],
  how: PostProcess,
  previous: ReadonlyMap<string, number>,
): { model: string; region: string; gpu: string; instances: number; delta: number }[] {
  if (how === "immediate") return targets;
  return targets.map((t) => {
    const current = t.instances - t.delta;
    const prev = previous.get(`${t.model}|${t.region}|${t.gpu}`) ?? 0;
    let instances = t.instances;
    if (how === "keep-max") instances = Math.max(current, t.instances);
    else if (how === "keep-min") instances = Math.min(current, t.instances);
    else if (Math.sign(prev) !== Math.sign(t.delta)) instances = current; // delay-changes: wait for confirmation
    return { ...t, instances, delta: instances - current };
  });
}

interface MinuteDemand {
  iw: number;
  niw: number;
  iwRequests: number;
  iwInputTokens: number;
  iwOutputTokens: number;
}

interface SeriesState {
  iw: DemandSeries;
  niw: DemandSeries;
  minutes: Map<number, MinuteDemand>;
  nextMinute: number | undefined;
  /** Interactive length mix per flushed minute (last hour). */
  mix: { requests: number; inputTokens: number; outputTokens: number }[];
  /** The last plan's forecast of this series' interactive demand (tokens/s). */
  forecastIw?: number;
}

/** Bins of the forecast profile a plan carries (minutes). */
export const PROFILE_BIN_MINUTES = 5;

/** One forecast judged against what happened (per series, per plan window). */
export interface ForecastRecord {
  model: string;
  region: string;
  /** Window the forecast was for (epoch ms). */
  fromMs: number;
  toMs: number;
  /** Mean forecast interactive + batch demand (tokens/s) over the window, before bias. */
  forecast: number;
  /** Mean observed demand over the window, once it has passed. */
  actual?: number;
}

/**
 * Batch tokens/s needed from now on for every job of a backlog (cumulative deadline buckets) to finish
 * `marginMinutes` before its deadline: the most demanding bucket's tokens over the time it has left.
 */
export function deadlineRate(
  backlog: readonly { withinMinutes: number; tokens: number }[],
  marginMinutes: number,
): number {
  let rate = 0;
  for (const b of backlog) {
    if (b.tokens <= 0) continue;
    const minutes = Math.max(5, b.withinMinutes - marginMinutes);
    rate = Math.max(rate, b.tokens / (minutes * 60));
  }
  return rate;
}

/** Whole-run forecast error per series: MAPE over windows with demand, sMAPE over windows with either. */
export function forecastErrors(
  records: readonly ForecastRecord[],
  untilMs = Number.POSITIVE_INFINITY,
): Map<string, { mape: number | undefined; smape: number | undefined; windows: number }> {
  const acc = new Map<string, { ape: number[]; sape: number[]; windows: number }>();
  for (const r of records) {
    if (r.actual === undefined || r.toMs > untilMs) continue;
    const k = `${r.model}|${r.region}`;
    const a = acc.get(k) ?? { ape: [], sape: [], windows: 0 };
    a.windows++;
    if (r.actual > 0) a.ape.push(Math.abs(r.forecast - r.actual) / r.actual);
    if (r.actual + r.forecast > 0)
      a.sape.push((2 * Math.abs(r.forecast - r.actual)) / (r.actual + r.forecast));
    acc.set(k, a);
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((x, y) => x + y, 0) / xs.length : undefined);
  return new Map(
    [...acc].map(([k, a]) => [k, { mape: mean(a.ape), smape: mean(a.sape), windows: a.windows }]),
  );
}

/**
 * The global planner: collects per-minute demand from the routers and the
 * current allocation from load reports, forecasts each (model, region) series
 * for the next window, solves the capacity ILP, verifies it, and publishes the
 * plan. Runs on the clock's cron schedule (node-cron live, virtual in simulation).
 */
export class PlannerActor extends Actor {
  private readonly series = new Map<string, SeriesState>();
  private readonly instances = new Map<
    string,
    { model: string; region: string; gpu: string; state: string }
  >();
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
    { atMs: number; buckets: { withinMinutes: number; tokens: number }[] }
  >();
  /** Regions whose every instance failed or stopped (no serving one left): planned with no supply. */
  private readonly downRegions = new Set<string>();
  private lastPlanId = "none";
  private previousDeltas = new Map<string, number>();
  readonly history: PlanResult[] = [];
  /** Forecast MAPE per series at the last plan. */
  readonly mape = new Map<string, number>();

  constructor(
    ctx: ActorContext,
    private readonly opts: PlannerOptions,
  ) {
    super(ctx, { role: "planner", id: opts.id ?? "planner-1", description: "forecast + ILP capacity plan" });
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
          this.backlog.set(`${e.model}|${st.region}`, {
            atMs: this.clock.now(),
            buckets: e.niwBacklog ?? [],
          });
      },
      { broadcast: true },
    );
    this.handle(PlanRequest, {}, async (req) => {
      this.log.info({ reason: req.reason, by: req.requestedBy }, "re-planning on request");
      const r = await this.plan();
      return { planId: this.lastPlanId, status: r.status, targets: r.targets.length, solveMs: r.solveMs };
    });
    if (this.opts.intervalMinutes !== undefined) {
      if (!(this.opts.intervalMinutes > 0))
        throw new RangeError(`intervalMinutes must be positive, got ${this.opts.intervalMinutes}`);
      this.every(this.opts.intervalMinutes * 60_000, async () => {
        await this.plan();
      });
    } else {
      this.cron(this.opts.schedule ?? "0 * * * *", async () => {
        await this.plan();
      });
    }
    const first = this.opts.firstPlanAfterMs ?? 120_000;
    if (first >= 0)
      this.after(first, async () => {
        if (this.lastPlanAtMs !== undefined) return;
        // Before any demand was seen there is nothing to forecast: the agents keep what they have.
        if (this.hasHistory()) await this.plan();
        else this.log.info({}, "no demand seen yet: no plan at start-up, the current allocation holds");
      });
    // A restarted planner continues its plan sequence from the plan it left in KV: plan ids never repeat.
    const latest = await this.kvGet("sage-plans", "latest");
    const prev = latest.ok ? (latest.value as { planId?: unknown } | undefined)?.planId : undefined;
    const m =
      typeof prev === "string" && prev.startsWith(`${this.identity.id}-p`) ? /-p(\d+)$/.exec(prev) : null;
    if (m) this.planSeq = Math.max(this.planSeq, Number(m[1]) + 1);
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

  private capacityModel: CapacityModel | undefined;

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
    let req = 0;
    let inp = 0;
    let out = 0;
    for (const region of this.opts.regions) {
      for (const m of this.state(model, region).mix) {
        req += m.requests;
        inp += m.inputTokens;
        out += m.outputTokens;
      }
    }
    return req > 0 ? { meanInputTokens: inp / req, meanOutputTokens: out / req } : undefined;
  }

  private state(model: string, region: string): SeriesState {
    const k = `${model}|${region}`;
    let s = this.series.get(k);
    if (!s) {
      s = {
        iw: new DemandSeries(),
        niw: new DemandSeries(),
        minutes: new Map(),
        nextMinute: undefined,
        mix: [],
      };
      this.series.set(k, s);
    }
    return s;
  }

  private onDemand(d: Payload<typeof DemandReport>): void {
    const s = this.state(d.model, d.region);
    const minute = Math.floor(d.windowStartMs / 60_000);
    const secs = d.windowMs / 1000;
    const tok = (t: { inputTokens: number; outputTokens: number }) => (t.inputTokens + t.outputTokens) / secs;
    const m = s.minutes.get(minute) ?? { iw: 0, niw: 0, iwRequests: 0, iwInputTokens: 0, iwOutputTokens: 0 };
    const f = d.byTier["iw-fast"];
    const n = d.byTier["iw-normal"];
    m.iw += tok(f) + tok(n);
    m.niw += tok(d.byTier.niw);
    m.iwRequests += f.requests + n.requests;
    m.iwInputTokens += f.inputTokens + n.inputTokens;
    m.iwOutputTokens += f.outputTokens + n.outputTokens;
    s.minutes.set(minute, m);
    s.nextMinute ??= minute;
    this.checkForecast(minute);
  }

  /** A series running well above its forecast asks for a re-plan now rather than at the next window. */
  private checkForecast(minute: number): void {
    const bound = this.opts.replanOnForecastError ?? 0.5;
    if (!(bound > 0) || this.lastPlanAtMs === undefined || this.replanning) return;
    const now = this.clock.now();
    if (now - this.lastPlanAtMs < (this.opts.replanMinGapMs ?? 15 * 60_000)) return;
    if (minute === this.lastCheckedMinute) return;
    this.lastCheckedMinute = minute;
    this.flush(minute); // minutes before this report's are complete (a late router's share is dropped)
    for (const [k, s] of this.series) {
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

  /** Move complete minutes (before the current one) into the series, zero-filling gaps. */
  private flush(nowMinute: number): void {
    for (const s of this.series.values()) {
      if (s.nextMinute === undefined) continue;
      while (s.nextMinute < nowMinute) {
        const m = s.minutes.get(s.nextMinute);
        s.iw.push(m?.iw ?? 0);
        s.niw.push(m?.niw ?? 0);
        s.mix.push({
          requests: m?.iwRequests ?? 0,
          inputTokens: m?.iwInputTokens ?? 0,
          outputTokens: m?.iwOutputTokens ?? 0,
        });
        if (s.mix.length > 60) s.mix.shift();
        s.minutes.delete(s.nextMinute);
        s.nextMinute++;
      }
    }
    // Judge the forecasts whose windows have passed.
    for (const f of this.forecasts) {
      if (f.actual !== undefined || f.toMs > nowMinute * 60_000) continue;
      const s = this.series.get(`${f.model}|${f.region}`);
      if (!s || s.nextMinute === undefined) continue;
      const first = s.nextMinute - s.iw.length; // minute of values[0]
      const from = Math.floor(f.fromMs / 60_000) - first;
      const to = Math.floor(f.toMs / 60_000) - first;
      let sum = 0;
      let n = 0;
      for (let i = Math.max(0, from); i < Math.min(s.iw.length, to); i++) {
        sum += s.iw.values[i]! + s.niw.values[i]!;
        n++;
      }
      if (n > 0) f.actual = sum / n;
    }
  }

  /** Mean interactive demand (tokens/s) the series measured over its last `minutes` complete minutes. */
  private recentIw(s: SeriesState, minutes: number): number {
    const v = s.iw.values.slice(-minutes);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : 0;
  }

  /** Minutes between plans (the cron schedule is taken as hourly). */
  get intervalMinutes(): number {
    return this.opts.intervalMinutes ?? 60;
  }

  /** Whether any series has demand history (a plan before that would plan for nothing). */
  hasHistory(): boolean {
    for (const s of this.series.values()) if (s.iw.length > 0 || s.minutes.size > 0) return true;
    return false;
  }

  async plan(): Promise<PlanResult> {
    const now = this.clock.now();
    this.flush(Math.floor(now / 60_000));
    this.lastPlanAtMs = now;
    const stat = this.opts.forecastStat ?? "peak";
    const horizon = this.intervalMinutes + (this.opts.leadMinutes ?? 5);
    const demand: { model: string; region: string; iwTokensPerSecond: number; niwTokensPerSecond: number }[] =
      [];
    const forecast: {
      model: string;
      region: string;
      tokensPerSecond: number;
      profile?: number[];
      binMinutes?: number;
    }[] = [];
    const niwPlan: { model: string; region: string; tokensPerSecond: number }[] = [];
    const cm = this.capacityModel ?? this.opts.capacityModel;
    const bias = this.opts.forecastBias ?? 1;
    for (const model of this.opts.models) {
      for (const region of this.opts.regions) {
        const s = this.state(model, region);
        const iw = s.iw.forecast(0, horizon);
        const niw = s.niw.forecast(0, horizon);
        if (iw.mape !== undefined) this.mape.set(`${model}|${region}`, iw.mape);
        this.forecasts.push({
          model,
          region,
          fromMs: now,
          toMs: now + horizon * 60_000,
          forecast: iw.mean + niw.mean,
        });
        // Never plan below what the series measures now: a forecast that lags a ramp must not take
        // capacity away from traffic that is already here.
        const iwTps = Math.max((stat === "peak" ? iw.peak : iw.mean) * bias, this.recentIw(s, 5));
        const niwTps = niw.mean * bias;
        s.forecastIw = iwTps;
        // The backlog's deadlines decide the batch capacity when the region reports them (recently).
        const b = this.backlog.get(`${model}|${region}`);
        // Batch work has no TTFT target: it may use an instance up to its knee, so it costs the plan only
        // the target utilisation's share of a planned instance per token (the interactive headroom).
        const rate =
          b && now - b.atMs <= 10 * 60_000
            ? deadlineRate(b.buckets, this.opts.niwDeadlineMarginMinutes ?? 60)
            : undefined;
        const required = rate === undefined ? undefined : rate * (cm?.targetUtilization ?? 1);
        if (rate) niwPlan.push({ model, region, tokensPerSecond: Math.round(rate) });
        demand.push({
          model,
          region,
          iwTokensPerSecond: iwTps,
          niwTokensPerSecond: niwTps,
          ...(required !== undefined ? { niwRequiredTokensPerSecond: required } : {}),
        });
        // When in the window the demand comes: each 5-minute bin's peak minute (biased like the rest).
        const profile: number[] = [];
        const pts = iw.points ?? [];
        for (let i = 0; i < pts.length; i += PROFILE_BIN_MINUTES)
          profile.push(Math.round(Math.max(...pts.slice(i, i + PROFILE_BIN_MINUTES)) * bias));
        forecast.push({
          model,
          region,
          tokensPerSecond: Math.round(iwTps + niwTps),
          ...(profile.length ? { profile, binMinutes: PROFILE_BIN_MINUTES } : {}),
        });
      }
    }
    const current = new Map<
      string,
      { model: string; region: string; gpu: string; instances: number; spot: number }
    >();
    for (const i of this.instances.values()) {
      const k = `${i.model}|${i.region}|${i.gpu}`;
      const c = current.get(k) ?? { model: i.model, region: i.region, gpu: i.gpu, instances: 0, spot: 0 };
      if (i.state === "spot") c.spot++;
      else if (i.state !== "stopped" && i.state !== "failed") c.instances++;
      current.set(k, c);
    }
    const capacity = cm
      ? {
          ...this.opts.capacity,
          ...cm.plannerCapacity(
            this.opts.models,
            this.opts.gpuTypes.map((g) => g.id),
            (m) => this.mixOfModel(m),
            // Pools are sized by the quietest region's forecast (interactive + batch), the least pooling any
            // region gets.
            (m) => {
              const ds = demand.filter((d) => d.model === m && d.iwTokensPerSecond > 0);
              return ds.length ? Math.min(...ds.map((d) => d.iwTokensPerSecond + d.niwTokensPerSecond)) : 0;
            },
          ),
        }
      : this.opts.capacity;
    const supply = this.downRegions.size
      ? Object.fromEntries(
          Object.entries(this.opts.supply).map(([r, byGpu]) => [
            r,
            this.downRegions.has(r) ? Object.fromEntries(Object.keys(byGpu).map((g) => [g, 0])) : byGpu,
          ]),
        )
      : this.opts.supply;
    const config =
      cm && this.opts.config?.headroom === undefined
        ? { ...this.opts.config, headroom: 0 }
        : this.opts.config;
    const snapshot = PlanningSnapshotSchema.parse({
      capacity,
      gpuTypes: this.opts.gpuTypes,
      supply,
      demand,
      current: [...current.values()],
      routes: this.opts.routes ?? {},
      ...(config ? { config } : {}),
    });
    const result = await solvePlan(snapshot, this.opts.solve);
    this.history.push(result);
    const solved = cm
      ? trimToPools(result.targets, result.routing, snapshot, cm, (m) => this.mixOfModel(m))
      : result.targets;
    const targets = postProcessTargets(solved, this.opts.postProcess ?? "immediate", this.previousDeltas);
    this.previousDeltas = new Map(solved.map((t) => [`${t.model}|${t.region}|${t.gpu}`, t.delta]));
    const planId = `${this.identity.id}-p${this.planSeq++}`;
    this.lastPlanId = planId;
    const payload: PayloadIn<typeof Plan> = {
      planId,
      createdAtMs: now,
      windowStartMs: now,
      windowEndMs: now + this.intervalMinutes * 60_000,
      strategy: `${this.opts.strategy}${this.opts.postProcess && this.opts.postProcess !== "immediate" ? `+${this.opts.postProcess}` : ""}`,
      targets: targets.map((t) => ({
        model: t.model,
        region: t.region,
        gpuType: t.gpu,
        instances: t.instances,
        delta: t.delta,
      })),
      routing: result.routing,
      forecast,
      ...(niwPlan.length ? { niw: niwPlan } : {}),
      solver: {
        status: result.status === "timeout" ? "timeout" : result.status,
        objective: Number.isFinite(result.objective) ? result.objective : 0,
        solveMs: result.solveMs,
      },
      notes: result.notes.slice(0, 200),
    };
    this.publish(Plan, {}, payload);
    // The latest plan is also kept in KV, so a region agent that starts mid-hour can fetch it.
    await this.kvPut("sage-plans", "latest", { ...payload, v: Plan.version });
    this.log.info(
      { status: result.status, solveMs: Math.round(result.solveMs), targets: result.targets.length },
      "published plan",
    );
    return result;
  }
}
