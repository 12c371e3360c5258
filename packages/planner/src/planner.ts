import {
  DemandReport,
  LoadReport,
  type Payload,
  type PayloadIn,
  Plan,
  PlanRequest,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { DemandSeries } from "./forecast.js";
import { type PlanResult, solvePlan } from "./ilp.js";
import type { SolveOptions } from "./lp.js";
import { type PlanningSnapshotInput, PlanningSnapshotSchema } from "./snapshot.js";

export interface PlannerOptions {
  id?: string;
  models: string[];
  regions: string[];
  /** Per-instance capacity (tokens/s) by model and GPU type, from the performance model. */
  capacity: Record<string, Record<string, number>>;
  gpuTypes: { id: string; pricePerHour: number; gpusPerVm?: number }[];
  supply: Record<string, Record<string, number>>;
  routes?: Record<string, string[]>;
  /** When to plan (cron, UTC). Default hourly at minute 0. */
  schedule?: string;
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

interface SeriesState {
  iw: DemandSeries;
  niw: DemandSeries;
  minutes: Map<number, { iw: number; niw: number }>;
  nextMinute: number | undefined;
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
      },
      { broadcast: true },
    );
    this.handle(PlanRequest, {}, async (req) => {
      this.log.info({ reason: req.reason, by: req.requestedBy }, "re-planning on request");
      const r = await this.plan();
      return { planId: this.lastPlanId, status: r.status, targets: r.targets.length, solveMs: r.solveMs };
    });
    this.cron(this.opts.schedule ?? "0 * * * *", async () => {
      await this.plan();
    });
    // A restarted planner continues its plan sequence from the plan it left in KV: plan ids never repeat.
    const latest = await this.kvGet("sage-plans", "latest");
    const prev = latest.ok ? (latest.value as { planId?: unknown } | undefined)?.planId : undefined;
    const m =
      typeof prev === "string" && prev.startsWith(`${this.identity.id}-p`) ? /-p(\d+)$/.exec(prev) : null;
    if (m) this.planSeq = Math.max(this.planSeq, Number(m[1]) + 1);
  }

  private state(model: string, region: string): SeriesState {
    const k = `${model}|${region}`;
    let s = this.series.get(k);
    if (!s) {
      s = { iw: new DemandSeries(), niw: new DemandSeries(), minutes: new Map(), nextMinute: undefined };
      this.series.set(k, s);
    }
    return s;
  }

  private onDemand(d: Payload<typeof DemandReport>): void {
    const s = this.state(d.model, d.region);
    const minute = Math.floor(d.windowStartMs / 60_000);
    const secs = d.windowMs / 1000;
    const tok = (t: { inputTokens: number; outputTokens: number }) => (t.inputTokens + t.outputTokens) / secs;
    const m = s.minutes.get(minute) ?? { iw: 0, niw: 0 };
    m.iw += tok(d.byTier["iw-fast"]) + tok(d.byTier["iw-normal"]);
    m.niw += tok(d.byTier.niw);
    s.minutes.set(minute, m);
    s.nextMinute ??= minute;
  }

  /** Move complete minutes (before the current one) into the series, zero-filling gaps. */
  private flush(nowMinute: number): void {
    for (const s of this.series.values()) {
      if (s.nextMinute === undefined) continue;
      while (s.nextMinute < nowMinute) {
        const m = s.minutes.get(s.nextMinute) ?? { iw: 0, niw: 0 };
        s.iw.push(m.iw);
        s.niw.push(m.niw);
        s.minutes.delete(s.nextMinute);
        s.nextMinute++;
      }
    }
  }

  async plan(): Promise<PlanResult> {
    const now = this.clock.now();
    this.flush(Math.floor(now / 60_000));
    const stat = this.opts.forecastStat ?? "peak";
    const demand: { model: string; region: string; iwTokensPerSecond: number; niwTokensPerSecond: number }[] =
      [];
    const forecast: { model: string; region: string; tokensPerSecond: number }[] = [];
    for (const model of this.opts.models) {
      for (const region of this.opts.regions) {
        const s = this.state(model, region);
        const iw = s.iw.forecast();
        const niw = s.niw.forecast();
        if (iw.mape !== undefined) this.mape.set(`${model}|${region}`, iw.mape);
        const bias = this.opts.forecastBias ?? 1;
        const iwTps = (stat === "peak" ? iw.peak : iw.mean) * bias;
        const niwTps = niw.mean * bias;
        demand.push({ model, region, iwTokensPerSecond: iwTps, niwTokensPerSecond: niwTps });
        forecast.push({ model, region, tokensPerSecond: Math.round(iwTps + niwTps) });
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
    const snapshot = PlanningSnapshotSchema.parse({
      capacity: this.opts.capacity,
      gpuTypes: this.opts.gpuTypes,
      supply: this.opts.supply,
      demand,
      current: [...current.values()],
      routes: this.opts.routes ?? {},
      ...(this.opts.config ? { config: this.opts.config } : {}),
    });
    const result = await solvePlan(snapshot, this.opts.solve);
    this.history.push(result);
    const targets = postProcessTargets(
      result.targets,
      this.opts.postProcess ?? "immediate",
      this.previousDeltas,
    );
    this.previousDeltas = new Map(result.targets.map((t) => [`${t.model}|${t.region}|${t.gpu}`, t.delta]));
    const planId = `${this.identity.id}-p${this.planSeq++}`;
    this.lastPlanId = planId;
    const payload: PayloadIn<typeof Plan> = {
      planId,
      createdAtMs: now,
      windowStartMs: now,
      windowEndMs: now + 3_600_000,
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

export type PlanStrategyName = "lt-i" | "lt-u" | "lt-ua";
