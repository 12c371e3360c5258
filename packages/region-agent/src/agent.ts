import {
  BATCH_MAX_ATTEMPTS,
  type CapacityModel,
  CapacityWanted,
  DEFAULT_SLO_TTFT_MS,
  DemandReport,
  InferenceRequest,
  type InstanceState,
  instanceLoad,
  judgedForSlo,
  KeyCache,
  LoadReport,
  NIW_STREAM,
  NiwJob,
  NodeCommand,
  type Payload,
  Plan,
  type PlanStrategy,
  RegionStatus,
  RequestCancel,
  RequestDone,
  VmCommand,
  validatePayload,
} from "@sageserve/protocol";
import { Actor, type ActorContext, type DurableMessage } from "@sageserve/runtime";
import { type Job, NiwQueue } from "./niw-queue.js";
import { DEFAULT_PLAN_EXECUTION, type PlanExecutionConfig, planDecision } from "./plan-policy.js";
import {
  DEFAULT_NIW_RELEASE,
  DEFAULT_REACTIVE,
  type EndpointSnapshot,
  type NiwReleaseConfig,
  niwReleaseCount,
  type ReactiveConfig,
  reactiveDecision,
  SloWindow,
  scaleUpCount,
  sloPressure,
} from "./policy.js";

export interface RegionAgentOptions {
  region: string;
  models: string[];
  /** "unified": one pool per model, NIW fed from the queue; "siloed": separate iw and niw pools. */
  mode: "unified" | "siloed";
  /** GPU types to boot new VMs with, in preference order. */
  gpuTypes: string[];
  reactive?: Partial<ReactiveConfig>;
  /** Per-pool overrides in siloed mode (e.g. a smaller minimum for the niw pool). */
  poolReactive?: Record<string, Partial<ReactiveConfig>>;
  /**
   * Per-model overrides of `reactive` in this region, e.g. `{ "llama3.2-3b": { minInstances: 0 } }`:
   * scale to zero — the last instance goes to spot after `zeroAfterIdleMs` idle, and comes back (a spot
   * reclaim, a swap or a boot) when a router holds requests for it (`CapacityWanted`) or a queued batch
   * job nears its deadline.
   */
  endpoints?: Record<string, Partial<ReactiveConfig>>;
  niw?: Partial<NiwReleaseConfig>;
  scalingIntervalMs?: number;
  /** Cool-downs after each kind of scale-up: the time the new capacity takes to arrive. */
  cooldowns?: { reclaimMs?: number; swapMs?: number; bootMs?: number };
  staleAfterMs?: number;
  /**
   * Follow the planner's plans with this strategy (unified mode): "lt-i" applies the targets
   * at once; "lt-u" scales down to the target at once and spends the scale-up budget only while
   * utilisation is high (emergency above 0.9); "lt-ua" adds forecast-gap overrides. Without a
   * plan yet, or without a strategy, the agent is purely reactive.
   */
  planStrategy?: PlanStrategy;
  planExecution?: Partial<PlanExecutionConfig>;
  /** Redelivery delay of NIW jobs this agent took but did not acknowledge (it died holding them). */
  niwAckWaitMs?: number;
  /**
   * Publish a `RegionStatus` (and store it in KV bucket `sage-regions`, key = region, for
   * `sageserve status`) this often; 0 = never. Default 5 s.
   */
  statusIntervalMs?: number;
  /** IW-fast TTFT target the SLO guard (`reactive.sloScaleUpAbove`) counts misses against. Default 1 s. */
  sloTtftMs?: number;
  /**
   * The SLO capacity model the planner plans with. Under a plan, an endpoint never holds fewer
   * instances than its measured interactive demand (the last minute's DemandReports, this region's
   * share by the plan's routing) needs by this model: a plan made on a forecast that lags a ramp does
   * not starve it, and the plan's scale-downs stop there.
   */
  capacity?: CapacityModel;
}

/** Deadline buckets of the NIW backlog in RegionStatus (minutes from now; the last covers a week). */
export const BACKLOG_BOUNDS_MINUTES = [30, 60, 120, 240, 480, 720, 1440, 10_080];

interface InstanceInfo {
  instanceId: string;
  nodeId: string;
  gpuType: string;
  model: string;
  pool: string | undefined;
  state: InstanceState;
  kvUtilization: number;
  /** instanceLoad(): KV or sequence slots, whichever is fuller — the scaling and placement signal. */
  load: number;
  kvCapacityTokens: number;
  atMs: number;
  /** NIW tokens released here since the last report. */
  releasedTokens: number;
}

/** A VM the provider is booting that has not reported yet. */
export interface BootInFlight {
  nodeId: string;
  model: string;
  gpuType: string;
  pool?: string;
  /** Forget it after this (the boot failed silently): scaling decides again. */
  untilMs: number;
}

const ARRIVING: ReadonlySet<InstanceState> = new Set(["booting", "loading", "swapping"]);

/**
 * One per region. Tracks every instance of the region from load reports;
 * scales each model endpoint reactively on KV/memory utilisation with
 * hysteresis and cool-downs — scale-down lends the VM to the spot pool,
 * scale-up reclaims a spot VM of the same model, else swaps a spot VM of
 * another model (warm migration), else boots a new VM — and feeds queued NIW
 * work into spare capacity, escalating jobs whose deadline approaches.
 */
export class RegionAgentActor extends Actor {
  private readonly instances = new Map<string, InstanceInfo>();
  private readonly keys = new KeyCache();
  private readonly queues = new Map<string, NiwQueue>();
  /** Durable-queue handles of the jobs in `queues`, acknowledged when each is released. */
  private readonly held = new Map<string, DurableMessage>();
  /**
   * Released jobs still running, by request id: their durable messages are acknowledged only when the
   * node reports them done (a Batch API request: after its result is stored), and a job whose instance
   * is lost goes back to the queue — nothing is lost when a node dies mid-job.
   */
  private readonly inFlight = new Map<
    string,
    { msg: DurableMessage; job: Job; instanceId: string; atMs: number }
  >();
  private readonly cooldownUntil = new Map<string, number>();
  private readonly reactive: ReactiveConfig;
  private readonly niwCfg: NiwReleaseConfig;
  private readonly cooldowns: Required<NonNullable<RegionAgentOptions["cooldowns"]>>;
  private readonly staleAfterMs: number;
  private commandSeq = 0;
  /** Distinguishes this run's command ids from a predecessor's (a restarted agent starts its count again). */
  private runTag = "";
  /**
   * VMs the provider accepted to boot that have not reported yet (a cloud VM is silent for minutes):
   * counted as arriving capacity, and kept in KV `sage-boots` so a restarted agent does not boot them again.
   */
  private readonly boots = new Map<string, BootInFlight>();
  readonly actions = {
    reclaim: 0,
    swap: 0,
    boot: 0,
    makeSpot: 0,
    bootRefused: 0,
    niwReleased: 0,
    niwEscalated: 0,
    emergencyUp: 0,
    sloUp: 0,
    gpuMigrate: 0,
    surgeUp: 0,
    lullDown: 0,
    demandUp: 0,
    coldStart: 0,
    niwPaced: 0,
    aheadUp: 0,
    released: 0,
  };
  /** Releases of NIW jobs that had been released before and came back re-routed (not in niwReleased). */
  niwReleasedAgain = 0;
  /** Queued jobs whose request was cancelled (a cancelled or expired batch), dropped unreleased. */
  niwCancelled = 0;
  private readonly cancelledQueued = new Set<string>();
  /** Released jobs queued again because their instance was lost before they were done. */
  niwRequeued = 0;
  /** VMs given back to the provider (stopped by a drain, or failed): each is released once. */
  private readonly releasedNodes = new Set<string>();
  private readonly planExec: PlanExecutionConfig;
  /** Per model: the plan's total for this region, its main GPU type, and its instances per GPU type. */
  private readonly planTarget = new Map<
    string,
    { instances: number; gpu: string | undefined; byGpu: Record<string, number> }
  >();
  private readonly budget = new Map<string, number>();
  private readonly forecastTps = new Map<string, number>();
  private readonly observedTps = new Map<string, number>();
  /** Interactive demand per model in the last demand windows, newest last (summed over the routers). */
  private readonly measuredIw = new Map<
    string,
    { windowStartMs: number; windowMs: number; requests: number; inputTokens: number; outputTokens: number }[]
  >();
  /** Last CapacityWanted per model (a router holds requests for it). */
  private readonly wantedAtMs = new Map<string, number>();
  /** Last time each "model|pool" endpoint had something running or waiting. */
  private readonly busyAtMs = new Map<string, number>();
  /** The plan's forecast profile of this region's interactive demand per model (when it is needed). */
  private readonly profile = new Map<string, { startMs: number; binMs: number; values: number[] }>();
  /** Batch tokens/s the plan reserves per model here, and the release allowance it has built up. */
  private readonly niwPlanRate = new Map<string, number>();
  private readonly niwAllowance = new Map<string, { tokens: number; atMs: number }>();
  /** Share of this region's interactive demand the plan keeps here (routing fraction to itself). */
  private readonly keepShare = new Map<string, number>();
  private planWindow: { startMs: number; endMs: number } | undefined;
  /** Recent IW-fast TTFT misses per endpoint (model|pool), for the SLO guard. */
  private readonly slo = new Map<string, SloWindow>();

  constructor(
    ctx: ActorContext,
    private readonly opts: RegionAgentOptions,
  ) {
    super(ctx, {
      role: "region-agent",
      id: `region-agent-${opts.region}`,
      description: "reactive scaling, spot pool, warm migration and NIW feeding for one region",
      metadata: { region: opts.region, mode: opts.mode },
    });
    this.reactive = { ...DEFAULT_REACTIVE, ...opts.reactive };
    this.niwCfg = { ...DEFAULT_NIW_RELEASE, ...opts.niw };
    this.cooldowns = { reclaimMs: 65_000, swapMs: 150_000, bootMs: 155_000, ...opts.cooldowns };
    this.staleAfterMs = opts.staleAfterMs ?? 30_000;
    this.planExec = { ...DEFAULT_PLAN_EXECUTION, ...opts.planExecution };
  }

  private pools(): (string | undefined)[] {
    return this.opts.mode === "siloed" ? ["iw", "niw"] : [undefined];
  }

  protected async setup(): Promise<void> {
    const region = this.opts.region;
    this.runTag = this.clock.now().toString(36);
    this.on(LoadReport, { region }, (r) => this.onLoad(r), { broadcast: true });
    this.on(CapacityWanted, { region }, (w) => void this.wantedAtMs.set(w.model, this.clock.now()), {
      broadcast: true,
    });
    if (this.opts.mode === "unified") {
      // Jobs come from the durable queue and are acknowledged only once released to an instance.
      await this.consumeDurable(
        NIW_STREAM,
        NiwJob,
        { region },
        `niw-${region}`,
        (job, msg) => this.enqueue(job, msg),
        {
          ackWaitMs: this.opts.niwAckWaitMs ?? 60_000,
        },
      );
      // A cancelled batch (Batch API cancel or expiry): its jobs still queued here are dropped when they
      // reach the head of the queue (the queue has no removal); running ones the node agent aborts.
      this.on(
        RequestCancel,
        {},
        (c) => {
          if (this.held.has(`j-${c.requestId}`)) this.cancelledQueued.add(c.requestId);
        },
        { broadcast: true },
      );
      // Jobs held here longer than the ack wait must not be redelivered: keep telling the queue.
      this.every(Math.max(100, (this.opts.niwAckWaitMs ?? 60_000) / 3), () => {
        for (const m of this.held.values()) m.working();
        for (const f of this.inFlight.values()) f.msg.working();
        this.requeueLost();
      });
    }
    const sloGuard = this.reactive.sloScaleUpAbove !== undefined;
    if (this.opts.mode === "unified" || sloGuard) {
      this.on(
        RequestDone,
        { region },
        (d) => {
          if (sloGuard) this.recordSlo(d);
          if (this.opts.mode === "unified") {
            const f = this.inFlight.get(d.requestId);
            if (f) {
              this.inFlight.delete(d.requestId);
              const attempt = f.job.attempt ?? 0;
              // A Batch API request the engine failed runs again (its result is stored on the last run).
              if (d.outcome === "failed" && f.job.resultKey !== undefined && attempt < BATCH_MAX_ATTEMPTS - 1)
                this.enqueue({ ...f.job, attempt: attempt + 1 }, f.msg);
              else f.msg.ack();
            }
            this.releaseNiw(d.model);
          }
        },
        { broadcast: true },
      );
    }
    if (this.opts.planStrategy) {
      this.on(Plan, {}, (p) => this.onPlan(p), { broadcast: true });
      // Started mid-hour: pick up the latest plan from KV instead of waiting for the next one.
      const latest = await this.kvGet("sage-plans", "latest");
      if (latest.ok && latest.value !== undefined) {
        const plan = validatePayload(Plan, latest.value);
        if (plan.ok) await this.onPlan(plan.value);
      }
      this.on(DemandReport, { region }, (d) => this.onDemand(d), { broadcast: true });
    }
    this.every(this.opts.scalingIntervalMs ?? 15_000, () => this.tick());
    const statusMs = this.opts.statusIntervalMs ?? 5_000;
    if (statusMs > 0) this.every(statusMs, () => this.publishStatus());
    // Boots a predecessor issued that have not arrived yet (it may have died right after asking).
    const stored = await this.kvGet("sage-boots", region);
    if (stored.ok && stored.value && Array.isArray((stored.value as { boots?: unknown }).boots)) {
      const now = this.clock.now();
      for (const b of (stored.value as { boots: BootInFlight[] }).boots) {
        if (typeof b?.nodeId === "string" && typeof b.model === "string" && b.untilMs > now)
          this.boots.set(b.nodeId, b);
      }
    }
  }

  /** Instances by state, serving KV utilisation and NIW queue depth per model (non-stale instances). */
  status(): Payload<typeof RegionStatus> {
    const now = this.clock.now();
    const eps = new Map<
      string,
      { instances: Partial<Record<InstanceState, number>>; used: number; cap: number }
    >();
    const entry = (model: string) => {
      const e = eps.get(model) ?? { instances: {}, used: 0, cap: 0 };
      eps.set(model, e);
      return e;
    };
    for (const m of this.opts.models) entry(m);
    for (const i of this.instances.values()) {
      if (now - i.atMs > this.staleAfterMs) continue;
      const e = entry(i.model);
      e.instances[i.state] = (e.instances[i.state] ?? 0) + 1;
      if (i.state === "serving") {
        e.used += i.kvUtilization * i.kvCapacityTokens;
        e.cap += i.kvCapacityTokens;
      }
    }
    return {
      region: this.opts.region,
      atMs: now,
      endpoints: [...eps].map(([model, e]) => ({
        model,
        instances: e.instances,
        memoryUtilization: e.cap > 0 ? Math.min(1, e.used / e.cap) : 0,
        niwQueueDepth: this.queueDepth(model),
        ...(this.queueDepth(model) > 0
          ? { niwBacklog: this.queues.get(model)!.backlog(now, BACKLOG_BOUNDS_MINUTES) }
          : {}),
      })),
    };
  }

  private async publishStatus(): Promise<void> {
    const s = this.status();
    this.publish(RegionStatus, { region: this.opts.region }, s);
    await this.kvPut("sage-regions", this.opts.region, { ...s, v: RegionStatus.version });
  }

  private onDemand(d: Payload<typeof DemandReport>): void {
    const t = d.byTier;
    const tokens =
      t["iw-fast"].inputTokens +
      t["iw-fast"].outputTokens +
      t["iw-normal"].inputTokens +
      t["iw-normal"].outputTokens +
      t.niw.inputTokens +
      t.niw.outputTokens;
    this.observedTps.set(d.model, tokens / (d.windowMs / 1000));
    const f = t["iw-fast"];
    const n = t["iw-normal"];
    const windows = this.measuredIw.get(d.model) ?? [];
    this.measuredIw.set(d.model, windows);
    const cur = windows.find((w) => w.windowStartMs === d.windowStartMs);
    if (!cur) {
      windows.push({
        windowStartMs: d.windowStartMs,
        windowMs: d.windowMs,
        requests: f.requests + n.requests,
        inputTokens: f.inputTokens + n.inputTokens,
        outputTokens: f.outputTokens + n.outputTokens,
      });
      windows.sort((a, b) => a.windowStartMs - b.windowStartMs);
      if (windows.length > 10) windows.shift();
    } else {
      cur.requests += f.requests + n.requests;
      cur.inputTokens += f.inputTokens + n.inputTokens;
      cur.outputTokens += f.outputTokens + n.outputTokens;
    }
  }

  /**
   * Instances the plan's forecast says `model` needs here one boot lead time from now (boot + engine load
   * + a scaling tick), by the capacity model: LT-U/LT-UA spend the plan's scale-ups by this clock, ahead
   * of the ramp, instead of waiting for utilisation to say so. 0 without a profile or a capacity model.
   */
  aheadNeed(model: string, gpu: string | undefined): number {
    const cap = this.opts.capacity;
    const prof = this.profile.get(model);
    if (!cap || !prof) return 0;
    const g = gpu && cap.capacity(model, gpu) ? gpu : this.opts.gpuTypes.find((x) => cap.capacity(model, x));
    if (!g) return 0;
    const leadMs = this.cooldowns.bootMs + 60_000 + (this.opts.scalingIntervalMs ?? 15_000);
    const i = Math.floor((this.clock.now() + leadMs - prof.startMs) / prof.binMs);
    if (i < 0) return 0;
    const tps = prof.values[Math.min(i, prof.values.length - 1)]! * (this.keepShare.get(model) ?? 1);
    const windows = this.measuredIw.get(model) ?? [];
    const req = windows.reduce((a, w) => a + w.requests, 0);
    const mix =
      req > 0
        ? {
            meanInputTokens: windows.reduce((a, w) => a + w.inputTokens, 0) / req,
            meanOutputTokens: windows.reduce((a, w) => a + w.outputTokens, 0) / req,
          }
        : undefined;
    return cap.instancesFor(model, g, tps, mix);
  }

  /**
   * Instances of `model` the measured interactive demand needs here by the capacity model: `up`, for the
   * mean of the last 5 demand windows (a minute's count is noisy), and `hold`, the most any single one of
   * the last 10 windows needed (capacity is not given back below it). 0 without a capacity model or
   * recent demand reports.
   */
  demandFloor(model: string, gpu: string | undefined): { up: number; hold: number } {
    const cap = this.opts.capacity;
    const now = this.clock.now();
    const windows = (this.measuredIw.get(model) ?? []).filter(
      (w) => now - (w.windowStartMs + w.windowMs) <= 11 * w.windowMs,
    );
    if (!cap || !windows.length) return { up: 0, hold: 0 };
    const g = gpu && cap.capacity(model, gpu) ? gpu : this.opts.gpuTypes.find((x) => cap.capacity(model, x));
    if (!g) return { up: 0, hold: 0 };
    const share = this.keepShare.get(model) ?? 1;
    const need = (ws: typeof windows): number => {
      const req = ws.reduce((a, w) => a + w.requests, 0);
      if (req === 0) return 0;
      const tokens = ws.reduce((a, w) => a + w.inputTokens + w.outputTokens, 0);
      const seconds = ws.reduce((a, w) => a + w.windowMs, 0) / 1000;
      return cap.instancesFor(model, g, (tokens / seconds) * share, {
        meanInputTokens: ws.reduce((a, w) => a + w.inputTokens, 0) / req,
        meanOutputTokens: ws.reduce((a, w) => a + w.outputTokens, 0) / req,
      });
    };
    const up = need(windows.slice(-5));
    return { up, hold: Math.max(up, ...windows.map((w) => need([w]))) };
  }

  private onPlan(p: Payload<typeof Plan>): void | Promise<void> {
    this.planWindow = { startMs: p.windowStartMs, endMs: p.windowEndMs };
    const targets = new Map<
      string,
      { instances: number; gpu: string | undefined; best: number; byGpu: Record<string, number> }
    >();
    for (const t of p.targets) {
      if (t.region !== this.opts.region) continue;
      const cur = targets.get(t.model) ?? { instances: 0, gpu: undefined, best: -1, byGpu: {} };
      cur.instances += t.instances;
      cur.byGpu[t.gpuType] = (cur.byGpu[t.gpuType] ?? 0) + t.instances;
      if (t.instances > cur.best) {
        cur.best = t.instances;
        cur.gpu = t.gpuType;
      }
      targets.set(t.model, cur);
    }
    this.profile.clear();
    for (const f of p.forecast) {
      if (f.region !== this.opts.region) continue;
      this.forecastTps.set(f.model, f.tokensPerSecond);
      if (f.profile?.length && f.binMinutes)
        this.profile.set(f.model, {
          startMs: p.windowStartMs,
          binMs: f.binMinutes * 60_000,
          values: f.profile,
        });
    }
    this.niwPlanRate.clear();
    for (const n of p.niw ?? [])
      if (n.region === this.opts.region) this.niwPlanRate.set(n.model, n.tokensPerSecond);
    this.keepShare.clear();
    for (const r of p.routing)
      if (r.from === this.opts.region && r.to === this.opts.region) this.keepShare.set(r.model, r.fraction);
    const work: Promise<void>[] = [];
    for (const model of this.opts.models) {
      const t = targets.get(model);
      if (!t) continue;
      const min = this.cfgFor(model, undefined).minInstances;
      const target = Math.max(min, t.instances);
      this.planTarget.set(model, { instances: target, gpu: t.gpu, byGpu: t.byGpu });
      if (this.opts.planStrategy === "lt-i") continue; // applied on the ticks
      const snap = this.snapshot(model, undefined);
      const floor = this.demandFloor(model, t.gpu);
      const total = snap.serving + snap.pending;
      // Up to the plan (or what the demand needs); down to the plan, but not below what it held lately.
      const delta =
        target > total ? Math.max(target, floor.up) - total : Math.max(target, floor.hold) - total;
      // The plan's scale-downs happen at once; its scale-ups become a budget spent when utilisation agrees.
      this.budget.set(model, Math.max(0, delta));
      for (let i = 0; i < -delta && snap.serving - i > min; i++) {
        work.push(this.scaleDown(model, undefined, true));
      }
    }
    if (work.length) return Promise.all(work).then(() => {});
  }

  /** Instances per model the current plan asks of this region (empty before the first plan). */
  planTargets(): Record<string, number> {
    return Object.fromEntries([...this.planTarget].map(([m, t]) => [m, t.instances]));
  }

  queueDepth(model?: string): number {
    if (model !== undefined) return this.queues.get(model)?.size ?? 0;
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  private recordSlo(d: Payload<typeof RequestDone>): void {
    if (d.tier !== "iw-fast" || !judgedForSlo(d)) return;
    const pool = this.instances.get(d.instanceId)?.pool;
    const k = this.keys.key(d.model, pool ?? "");
    let w = this.slo.get(k);
    if (!w) {
      w = new SloWindow();
      this.slo.set(k, w);
    }
    const target = this.opts.sloTtftMs ?? DEFAULT_SLO_TTFT_MS["iw-fast"];
    w.add(this.clock.now(), d.outcome !== "ok" || d.ttftMs > target);
  }

  private onLoad(r: Payload<typeof LoadReport>): void {
    if (this.boots.delete(r.nodeId)) void this.saveBoots();
    const ek = this.keys.key(r.model, r.pool ?? "");
    if (r.running + r.waiting > 0 || !this.busyAtMs.has(ek)) this.busyAtMs.set(ek, this.clock.now());
    const cur = this.instances.get(r.instanceId);
    // A command we just issued is not undone by a report that predates it.
    if (cur && cur.atMs > r.atMs) return;
    if (cur) {
      // Updated in place: a report every few seconds per instance allocates nothing.
      cur.nodeId = r.nodeId;
      cur.gpuType = r.gpuType;
      cur.model = r.model;
      cur.pool = r.pool;
      cur.state = r.state;
      cur.kvUtilization = r.kvUtilization;
      cur.load = instanceLoad(r);
      cur.kvCapacityTokens = r.kvCapacityTokens ?? 1;
      cur.atMs = r.atMs;
      cur.releasedTokens = 0;
      return;
    }
    this.instances.set(r.instanceId, {
      instanceId: r.instanceId,
      nodeId: r.nodeId,
      gpuType: r.gpuType,
      model: r.model,
      pool: r.pool,
      state: r.state,
      kvUtilization: r.kvUtilization,
      load: instanceLoad(r),
      kvCapacityTokens: r.kvCapacityTokens ?? 1,
      atMs: r.atMs,
      releasedTokens: 0,
    });
  }

  private endpointInstances(model: string, pool: string | undefined): InstanceInfo[] {
    const now = this.clock.now();
    const out: InstanceInfo[] = [];
    for (const i of this.instances.values()) {
      if (i.model === model && i.pool === pool && now - i.atMs <= this.staleAfterMs) out.push(i);
    }
    return out;
  }

  snapshot(model: string, pool: string | undefined): EndpointSnapshot {
    const ek = this.keys.key(model, pool ?? "");
    let used = 0;
    let cap = 0;
    let serving = 0;
    let pending = 0;
    for (const i of this.endpointInstances(model, pool)) {
      if (i.state === "serving") {
        serving++;
        used += (i.load + i.releasedTokens / i.kvCapacityTokens) * i.kvCapacityTokens;
        cap += i.kvCapacityTokens;
      } else if (ARRIVING.has(i.state)) pending++;
    }
    if (this.boots.size) {
      const now = this.clock.now();
      for (const b of this.boots.values())
        if (b.model === model && b.pool === pool && b.untilMs > now) pending++;
    }
    return {
      serving,
      pending,
      utilization: cap > 0 ? Math.min(1, used / cap) : 1,
      cooldownUntilMs: this.cooldownUntil.get(ek) ?? 0,
      sloMissRate: this.slo.get(ek)?.missRate(this.clock.now()) ?? 0,
      wanted: this.wanted(model),
      idleMs: this.clock.now() - (this.busyAtMs.get(ek) ?? this.clock.now()),
    };
  }

  /** Requests are held for this model here (in the last 30 s), or a queued batch job nears its deadline. */
  private wanted(model: string): boolean {
    const now = this.clock.now();
    const at = this.wantedAtMs.get(model);
    if (at !== undefined && now - at <= 30_000) return true;
    const next = this.queues.get(model)?.peek();
    return next !== undefined && next.deadlineMs - now <= this.niwCfg.escalateBeforeDeadlineMs;
  }

  /** The reactive settings of one endpoint: defaults, then the pool's, then the model's. */
  private cfgFor(model: string, pool: string | undefined): ReactiveConfig {
    return {
      ...this.reactive,
      ...(pool ? this.opts.poolReactive?.[pool] : undefined),
      ...this.opts.endpoints?.[model],
    };
  }

  private tick(): void | Promise<void> {
    const now = this.clock.now();
    const work: Promise<void>[] = [];
    for (const i of this.instances.values()) {
      if ((i.state === "stopped" || i.state === "failed") && now - i.atMs <= this.staleAfterMs) {
        if (!this.releasedNodes.has(i.nodeId)) work.push(this.release(i.nodeId, i.gpuType));
      }
    }
    for (const model of this.opts.models) {
      if (this.opts.planStrategy && this.planTarget.has(model)) {
        this.followPlan(model, now, work);
        if (this.opts.mode === "unified") this.releaseNiw(model);
        continue;
      }
      for (const pool of this.pools()) {
        const cfg = this.cfgFor(model, pool);
        const snap = this.snapshot(model, pool);
        const decision = reactiveDecision(snap, cfg, now);
        if (decision === "up") {
          if (snap.serving + snap.pending === 0 && cfg.minInstances === 0) this.actions.coldStart++;
          else if (snap.utilization <= cfg.scaleUpAbove && sloPressure(snap, cfg)) this.actions.sloUp++;
          const n = Math.min(scaleUpCount(snap, cfg), this.planExec.maxActionsPerTick);
          for (let i = 0; i < n; i++) work.push(this.scaleUp(model, pool, undefined, i > 0));
        } else if (decision === "down") work.push(this.scaleDown(model, pool));
      }
      if (this.opts.mode === "unified") this.releaseNiw(model);
    }
    if (work.length) return Promise.all(work).then(() => {});
  }

  /** One scaling tick of an endpoint under a plan (LT-I, LT-U or LT-UA): `planDecision` decides, this carries it out. */
  private followPlan(model: string, now: number, work: Promise<void>[]): void {
    const plan = this.planTarget.get(model)!;
    const mix = this.gpuMix(model);
    const gpu = mix.add ?? plan.gpu;
    const d = planDecision({
      strategy: this.opts.planStrategy!,
      nowMs: now,
      snap: this.snapshot(model, undefined),
      cfg: this.cfgFor(model, undefined),
      exec: this.planExec,
      plan: { instances: plan.instances, gpu: plan.gpu },
      mix: { add: mix.add, hasSurplus: mix.surplus.size > 0 },
      measured: this.demandFloor(model, gpu),
      aheadNeed: this.aheadNeed(model, gpu),
      budget: this.budget.get(model) ?? 0,
      observedTps: this.observedTps.get(model) ?? 0,
      forecastTps: this.forecastTps.get(model) ?? 0,
      ...(this.planWindow ? { planWindowEndMs: this.planWindow.endMs } : {}),
    });
    if (d.reason) this.actions[d.reason.name] += d.reason.count;
    if (d.budget !== undefined) this.budget.set(model, d.budget);
    for (const a of d.actions)
      work.push(
        a.kind === "up"
          ? this.scaleUp(model, undefined, a.gpu, a.batch, a.strictGpu === true)
          : this.scaleDown(model, undefined, a.batch),
      );
  }

  /**
   * How this model's instances in the region compare with the plan's GPU types: the type furthest below
   * its target (to boot next), and the types above theirs (to give back first).
   */
  private gpuMix(model: string): { add: string | undefined; surplus: Set<string> } {
    const plan = this.planTarget.get(model);
    const surplus = new Set<string>();
    if (!plan) return { add: undefined, surplus };
    const have: Record<string, number> = {};
    for (const i of this.endpointInstances(model, undefined)) {
      if (i.state === "serving" || ARRIVING.has(i.state)) have[i.gpuType] = (have[i.gpuType] ?? 0) + 1;
    }
    let add: string | undefined;
    let worst = 0;
    for (const [g, want] of Object.entries(plan.byGpu)) {
      const gap = want - (have[g] ?? 0);
      if (gap > worst) {
        worst = gap;
        add = g;
      }
    }
    for (const [g, n] of Object.entries(have)) if (n > (plan.byGpu[g] ?? 0)) surplus.add(g);
    return { add, surplus };
  }

  private setCooldown(model: string, pool: string | undefined, ms: number): void {
    this.cooldownUntil.set(`${model}|${pool ?? ""}`, this.clock.now() + ms);
  }

  /**
   * `gpu`: the plan's GPU type to boot first; `batch`: one of several actions this tick (no cool-down
   * gate); `strictGpu`: only that GPU type will do (a GPU-type migration: a spot VM or a boot of another
   * type would undo it).
   */
  private async scaleUp(
    model: string,
    pool: string | undefined,
    gpu?: string,
    batch = false,
    strictGpu = false,
  ): Promise<void> {
    const now = this.clock.now();
    const spot = [...this.instances.values()].filter(
      (i) =>
        i.state === "spot" &&
        now - i.atMs <= this.staleAfterMs &&
        (!strictGpu || gpu === undefined || i.gpuType === gpu),
    );
    const own = spot.find((i) => i.model === model);
    const other = own ? undefined : spot.sort((a, b) => a.instanceId.localeCompare(b.instanceId))[0];
    const target = own ?? other;
    if (target) {
      const action = own ? "reclaim" : "swap";
      if (!batch) this.setCooldown(model, pool, own ? this.cooldowns.reclaimMs : this.cooldowns.swapMs);
      target.state = own ? "loading" : "swapping";
      target.model = model;
      target.pool = pool;
      target.atMs = now;
      const reply = await this.request(
        NodeCommand,
        { node: target.nodeId },
        {
          commandId: this.nextCommandId(),
          action,
          model,
          instanceId: target.instanceId,
          ...(pool ? { pool } : {}),
          issuedAtMs: now,
        },
        10_000,
      );
      if (reply.ok && reply.value.accepted) {
        if (own) this.actions.reclaim++;
        else this.actions.swap++;
      }
      return;
    }
    if (!batch) this.setCooldown(model, pool, this.cooldowns.bootMs);
    const order = gpu
      ? strictGpu
        ? [gpu]
        : [gpu, ...this.opts.gpuTypes.filter((g) => g !== gpu)]
      : this.opts.gpuTypes;
    for (const gpuType of order) {
      const reply = await this.request(
        VmCommand,
        { region: this.opts.region },
        {
          commandId: this.nextCommandId(),
          action: "boot",
          gpuType,
          model,
          ...(pool ? { pool } : {}),
          issuedAtMs: now,
        },
        10_000,
      );
      if (reply.ok && reply.value.accepted) {
        this.actions.boot++;
        const nodeId = reply.value.nodeId;
        const heard = nodeId !== undefined && [...this.instances.values()].some((i) => i.nodeId === nodeId);
        if (nodeId !== undefined && !heard) {
          // Arriving capacity until the node reports, or until a boot should long have finished.
          this.boots.set(nodeId, {
            nodeId,
            model,
            gpuType,
            ...(pool ? { pool } : {}),
            untilMs: this.clock.now() + Math.max(this.cooldowns.bootMs, 2 * (reply.value.etaMs ?? 0)),
          });
          await this.saveBoots();
        }
        return;
      }
    }
    this.actions.bootRefused++;
  }

  /** Give a stopped (drained) or failed VM back to the provider; the endpoint's scaling replaces it. */
  private async release(nodeId: string, gpuType: string): Promise<void> {
    this.releasedNodes.add(nodeId);
    const reply = await this.request(
      VmCommand,
      { region: this.opts.region },
      {
        commandId: this.nextCommandId(),
        action: "release",
        gpuType,
        nodeId,
        issuedAtMs: this.clock.now(),
      },
      10_000,
    );
    if (reply.ok && reply.value.accepted) this.actions.released++;
    else this.log.warn({ nodeId, reply }, "VM release refused or failed");
  }

  private async scaleDown(model: string, pool: string | undefined, batch = false): Promise<void> {
    // Under a plan, GPU types above their planned count go first (this is how a migration completes).
    const surplus = pool === undefined ? this.gpuMix(model).surplus : new Set<string>();
    const serving = this.endpointInstances(model, pool)
      .filter((i) => i.state === "serving")
      .sort(
        (a, b) =>
          Number(surplus.has(b.gpuType)) - Number(surplus.has(a.gpuType)) ||
          a.load - b.load ||
          a.instanceId.localeCompare(b.instanceId),
      );
    const victim = serving[0];
    if (!victim) return;
    if (!batch) this.setCooldown(model, pool, this.reactive.scaleDownCooldownMs);
    victim.state = "draining";
    victim.atMs = this.clock.now();
    const reply = await this.request(
      NodeCommand,
      { node: victim.nodeId },
      {
        commandId: this.nextCommandId(),
        action: "make-spot",
        instanceId: victim.instanceId,
        issuedAtMs: this.clock.now(),
      },
      10_000,
    );
    if (reply.ok && reply.value.accepted) this.actions.makeSpot++;
  }

  /** Released jobs whose instance is gone (silent past the stale bound, failed or stopped) are queued again. */
  private requeueLost(): void {
    const now = this.clock.now();
    for (const [requestId, f] of this.inFlight) {
      if (now - f.atMs <= this.staleAfterMs) continue;
      const i = this.instances.get(f.instanceId);
      if (i && now - i.atMs <= this.staleAfterMs && i.state !== "failed" && i.state !== "stopped") continue;
      this.inFlight.delete(requestId);
      this.niwRequeued++;
      this.log.warn(
        { jobId: f.job.jobId, instanceId: f.instanceId },
        "NIW job lost with its instance: queued again",
      );
      this.enqueue({ ...f.job, attempt: (f.job.attempt ?? 0) + 1 }, f.msg);
    }
  }

  private enqueue(job: Job, msg?: DurableMessage): void {
    const running = this.inFlight.get(job.requestId);
    if (running && msg) {
      // A redelivery of a job still running (same attempt): keep the newer handle. A job handed back by
      // its instance (a later attempt): that run is over.
      if ((job.attempt ?? 0) <= (running.job.attempt ?? 0)) {
        running.msg = msg;
        return;
      }
      this.inFlight.delete(job.requestId);
      running.msg.ack();
    }
    if (msg) {
      if (this.held.has(job.jobId)) {
        // Redelivered while we still hold it: keep the newer handle, do not queue it twice.
        this.held.set(job.jobId, msg);
        return;
      }
      this.held.set(job.jobId, msg);
    }
    let q = this.queues.get(job.model);
    if (!q) {
      q = new NiwQueue();
      this.queues.set(job.model, q);
    }
    q.push(job);
    this.releaseNiw(job.model);
  }

  /** Release queued NIW jobs into spare capacity; jobs near their deadline go regardless. */
  private releaseNiw(model: string): void {
    const q = this.queues.get(model);
    if (!q || q.size === 0) return;
    const now = this.clock.now();
    const u = this.snapshot(model, undefined).utilization;
    let budget = niwReleaseCount(u, this.niwCfg);
    // The plan's batch capacity: released at its rate whatever the utilisation (below 0.9, so interactive
    // work keeps its headroom) — the backlog meets its deadlines without waiting for escalation.
    const rate = this.niwPlanRate.get(model) ?? 0;
    let allowance: { tokens: number; atMs: number } | undefined;
    if (rate > 0) {
      allowance = this.niwAllowance.get(model) ?? { tokens: 0, atMs: now };
      allowance.tokens = Math.min(rate * 60, allowance.tokens + (rate * (now - allowance.atMs)) / 1000);
      allowance.atMs = now;
      this.niwAllowance.set(model, allowance);
    }
    for (let n = 0; n < this.niwCfg.maxPerTick && q.size > 0; n++) {
      const head = q.peek()!;
      if (this.cancelledQueued.delete(head.requestId)) {
        q.pop();
        this.held.get(head.jobId)?.ack();
        this.held.delete(head.jobId);
        this.niwCancelled++;
        n--;
        continue;
      }
      const urgent = head.deadlineMs - now <= this.niwCfg.escalateBeforeDeadlineMs;
      const cost = head.inputTokens + head.maxOutputTokens;
      const paced = !urgent && budget <= 0 && allowance !== undefined && allowance.tokens >= cost && u < 0.9;
      if (!urgent && budget <= 0 && !paced) break;
      const target = this.leastLoaded(model);
      if (!target) break;
      q.pop();
      const msg = this.held.get(head.jobId);
      this.held.delete(head.jobId);
      if (msg)
        this.inFlight.set(head.requestId, { msg, job: head, instanceId: target.instanceId, atMs: now });
      if (paced) {
        allowance!.tokens -= cost;
        this.actions.niwPaced++;
      } else if (!urgent) budget--;
      // A job handed back by its instance (drained, swapped, lost) and queued again is released again:
      // counted apart, so that niwReleased and niwEscalated count jobs, each once.
      if (head.attempt !== undefined) this.niwReleasedAgain++;
      else {
        this.actions.niwReleased++;
        if (urgent) this.actions.niwEscalated++;
      }
      target.releasedTokens += head.inputTokens + head.maxOutputTokens;
      const job: Payload<typeof InferenceRequest> = {
        requestId: head.requestId,
        model,
        tier: "niw",
        originRegion: head.originRegion,
        inputTokens: head.inputTokens,
        maxOutputTokens: head.maxOutputTokens,
        arrivalMs: head.arrivalMs,
        deadlineMs: head.deadlineMs,
        stream: false,
        instanceId: target.instanceId,
      };
      // Set only when present (no spread of a temporary object per job: the simulator's hot path).
      if (head.body !== undefined) job.body = head.body;
      if (head.streamTo !== undefined) job.streamTo = head.streamTo;
      if (head.resultKey !== undefined) job.resultKey = head.resultKey;
      // The run's number: a node stores a batch request's failure only on its last run.
      if (head.attempt !== undefined) job.attempt = head.attempt;
      this.publish(InferenceRequest, { node: target.nodeId }, job);
    }
  }

  private leastLoaded(model: string): InstanceInfo | undefined {
    let best: InstanceInfo | undefined;
    let bestU = Number.POSITIVE_INFINITY;
    for (const i of this.endpointInstances(model, undefined)) {
      if (i.state !== "serving") continue;
      const u = i.load + i.releasedTokens / i.kvCapacityTokens;
      if (u < bestU) {
        best = i;
        bestU = u;
      }
    }
    return best;
  }

  private async saveBoots(): Promise<void> {
    const now = this.clock.now();
    for (const [id, b] of this.boots) if (b.untilMs <= now) this.boots.delete(id);
    await this.kvPut("sage-boots", this.opts.region, { boots: [...this.boots.values()] });
  }

  /** VMs booting that have not reported yet (from this agent or, after a restart, its predecessor). */
  bootsInFlight(): BootInFlight[] {
    return [...this.boots.values()];
  }

  private nextCommandId(): string {
    return `${this.identity.id}-${this.runTag}-c${this.commandSeq++}`;
  }
}
