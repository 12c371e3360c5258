import {
  type CapacityModel,
  CapacityWanted,
  DemandReport,
  InferenceRequest,
  judgedForSlo,
  KeyCache,
  LoadReport,
  NIW_STREAM,
  NiwJob,
  NodeCommand,
  type Payload,
  Plan,
  promptVerdict,
  RegionStatus,
  RequestCancel,
  RequestDone,
  RunCheck,
  VmCommand,
  validatePayload,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { newActionCounts } from "./actions.js";
import { ARRIVING, type BootInFlight, InstanceView, loadWithReleased } from "./instance-view.js";
import { NiwFeed } from "./niw-feed.js";
import { type RegionAgentOptions, type ResolvedSettings, resolveOptions } from "./options.js";
import { gpuMix, planDecision } from "./plan-policy.js";
import { type PlanTargetSum, PlanView } from "./plan-view.js";
import {
  type EndpointSnapshot,
  type ReactiveConfig,
  reactiveDecision,
  SloWindow,
  scaleUpCount,
  sloPressure,
} from "./policy.js";
import { ScalingActuator } from "./scaling.js";
import { SloCalibration } from "./slo-calibration.js";

/**
 * One per region. Tracks every instance of the region from load reports;
 * scales each model endpoint reactively on KV/memory utilisation with
 * hysteresis and cool-downs — scale-down lends the VM to the spot pool,
 * scale-up reclaims a spot VM of the same model, else swaps a spot VM of
 * another model (warm migration), else boots a new VM — and feeds queued NIW
 * work into spare capacity, escalating jobs whose deadline approaches.
 *
 * The actor wires the bus to its parts and applies decisions: the instance view (instance-view.ts), the
 * plan's view of the region (plan-view.ts), the NIW feed (niw-feed.ts) and scaling actuation
 * (scaling.ts); the decisions themselves are pure (policy.ts, plan-policy.ts).
 */
export class RegionAgentActor extends Actor {
  private readonly keys = new KeyCache();
  private readonly settings: ResolvedSettings;
  private readonly view: InstanceView;
  private readonly plan: PlanView;
  private readonly niw: NiwFeed;
  private readonly scaling: ScalingActuator;
  readonly actions = newActionCounts();
  /** Last CapacityWanted per model (a router holds requests for it). */
  private readonly wantedAtMs = new Map<string, number>();
  /** Recent IW-fast TTFT misses per endpoint (model|pool), for the SLO guard. */
  private readonly slo = new Map<string, SloWindow>();
  /** SLO feedback on the capacity model per model (under a plan with a capacity model). */
  private readonly calibration: SloCalibration;

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
    const s = resolveOptions(opts);
    this.settings = s;
    this.view = new InstanceView(this.clock, this.keys, s.staleAfterMs);
    this.calibration = new SloCalibration({
      ...s.sloCalibration,
      enabled: s.sloCalibration.enabled && opts.planStrategy !== undefined && opts.capacity !== undefined,
    });
    this.plan = new PlanView(
      this.clock,
      opts.region,
      opts.capacity,
      opts.gpuTypes,
      s.cooldowns.bootMs + 60_000 + s.scalingIntervalMs,
      (model) => this.calibration.factor(model),
      s.planExecution.holdMeanWindows,
    );
    this.niw = new NiwFeed(this.clock, this.log, this.view, s.niw, this.actions, {
      utilization: (model) => this.utilization(model, undefined),
      dispatch: (node, job) => void this.publish(InferenceRequest, { node }, job),
      checkRuns: async (node, requestIds) => {
        const r = await this.request(RunCheck, { node }, { requestIds }, 5_000);
        return r.ok ? r.value : undefined;
      },
    });
    this.scaling = new ScalingActuator(
      this.clock,
      this.log,
      this.view,
      {
        region: opts.region,
        gpuTypes: opts.gpuTypes,
        cooldowns: s.cooldowns,
        scaleDownCooldownMs: s.reactive.scaleDownCooldownMs,
        idPrefix: this.identity.id,
      },
      this.actions,
      {
        nodeCommand: (node, cmd) => this.request(NodeCommand, { node }, cmd, 10_000),
        vmCommand: (cmd) => this.request(VmCommand, { region: opts.region }, cmd, 10_000),
        saveBoots: () => this.saveBoots(),
      },
    );
  }

  /** Releases of NIW jobs that had been released before and came back re-routed (not in niwReleased). */
  get niwReleasedAgain(): number {
    return this.niw.releasedAgain;
  }

  /** Queued jobs whose request was cancelled (a cancelled or expired batch), dropped unreleased. */
  get niwCancelled(): number {
    return this.niw.cancelled;
  }

  /** Released jobs queued again because their instance was lost before they were done. */
  get niwRequeued(): number {
    return this.niw.requeued;
  }

  /** Released NIW jobs their live node never received (the hand-off was lost), queued again. */
  get niwHandoffsLost(): number {
    return this.niw.handoffsLost;
  }

  /** Released NIW jobs settled from their node's answer to a RunCheck (their RequestDone was lost). */
  get niwDoneByCheck(): number {
    return this.niw.doneByCheck;
  }

  private pools(): (string | undefined)[] {
    return this.opts.mode === "siloed" ? ["iw", "niw"] : [undefined];
  }

  protected async setup(): Promise<void> {
    const region = this.opts.region;
    this.scaling.startRun();
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
        (job, msg) => this.niw.enqueue(job, msg),
        { ackWaitMs: this.settings.niwAckWaitMs },
      );
      this.on(RequestCancel, {}, (c) => this.niw.cancel(c.requestId), { broadcast: true });
      const redelivers = this.bus.durableRedelivery;
      this.every(Math.max(100, this.settings.niwAckWaitMs / 3), () => this.niw.keepAlive(redelivers));
    }
    this.watchRequestsDone(region);
    if (this.opts.planStrategy) {
      this.on(Plan, {}, (p) => this.onPlan(p), { broadcast: true });
      // Started mid-hour: pick up the latest plan from KV instead of waiting for the next one.
      const latest = await this.kvGet("sage-plans", "latest");
      if (latest.ok && latest.value !== undefined) {
        const plan = validatePayload(Plan, latest.value);
        if (plan.ok) await this.onPlan(plan.value);
      }
      this.on(DemandReport, { region }, (d) => this.plan.recordDemand(d), { broadcast: true });
    }
    this.every(this.settings.scalingIntervalMs, () => this.tick());
    const statusMs = this.settings.statusIntervalMs;
    if (statusMs > 0) this.every(statusMs, () => this.publishStatus());
    // Boots a predecessor issued that have not arrived yet (it may have died right after asking).
    const stored = await this.kvGet("sage-boots", region);
    if (stored.ok) this.view.restoreBoots(stored.value, this.clock.now());
  }

  /** Finished requests feed the SLO guard (when on) and, in unified mode, settle NIW runs. */
  private watchRequestsDone(region: string): void {
    const sloGuard = this.settings.reactive.sloScaleUpAbove !== undefined;
    const unified = this.opts.mode === "unified";
    const calibrating = this.calibration.cfg.enabled;
    if (!unified && !sloGuard && !calibrating) return;
    this.on(
      RequestDone,
      { region },
      (d) => {
        if (sloGuard) this.recordSlo(d);
        if (calibrating) this.recordCalibration(d);
        if (unified) this.niw.onDone(d);
      },
      { broadcast: true },
    );
  }

  /** Instances by state, serving KV utilisation and NIW queue depth per model (non-stale instances). */
  status(): Payload<typeof RegionStatus> {
    const now = this.clock.now();
    const eps = this.view.tallyByModel(this.opts.models, now);
    const factors = this.calibration.factors();
    return {
      region: this.opts.region,
      atMs: now,
      endpoints: [...eps].map(([model, e]) => {
        const backlog = this.niw.backlog(model, now);
        const factor = factors[model];
        const need = this.opts.planStrategy && this.plan.demandNeed(model, this.niw.pacedRate(model));
        return {
          model,
          instances: e.instances,
          memoryUtilization: e.cap > 0 ? Math.min(1, e.used / e.cap) : 0,
          niwQueueDepth: this.queueDepth(model),
          ...(backlog !== undefined
            ? {
                niwBacklog: backlog,
                niwEscalateBeforeMinutes: this.settings.niw.escalateBeforeDeadlineMs / 60_000,
              }
            : {}),
          ...(factor !== undefined ? { capacityFactor: factor } : {}),
          ...(need !== undefined ? { demandNeed: need } : {}),
        };
      }),
    };
  }

  private async publishStatus(): Promise<void> {
    const s = this.status();
    this.publish(RegionStatus, { region: this.opts.region }, s);
    await this.kvPut("sage-regions", this.opts.region, { ...s, v: RegionStatus.version });
  }

  /** Count instances under a plan with `cap` (the planner's model; a live cluster measures it after start-up). */
  useCapacityModel(cap: CapacityModel): void {
    this.plan.useCapacityModel(cap);
  }

  /** See PlanView.demandFloor: with the plan's batch rate counted while batch jobs are queued here. */
  demandFloor(model: string, gpu: string | undefined): { up: number; hold: number } {
    return this.plan.demandFloor(model, gpu, this.niw.pacedRate(model));
  }

  private onPlan(p: Payload<typeof Plan>): void | Promise<void> {
    const targets = this.plan.absorb(p);
    this.niw.setPlanRates(p.niw, this.opts.region);
    const work: Promise<void>[] = [];
    // The planner leaves out a (model, region) it plans at zero where it sees none running (possibly boots
    // still on their way): a model the plan names elsewhere but not here is planned at zero here — not
    // held at the previous plan's target, which would keep booting what the plan no longer wants.
    const planned = new Set(p.targets.map((t) => t.model));
    for (const model of this.opts.models) {
      const t =
        targets.get(model) ?? (planned.has(model) && this.plan.targets.has(model) ? noneHere() : undefined);
      if (t) this.applyPlanTarget(model, t, work);
    }
    if (work.length) return Promise.all(work).then(() => {});
  }

  /**
   * A new plan's target for one model: remembered for the ticks (LT-I applies it there); under LT-U/LT-UA
   * its scale-downs happen at once and its scale-ups become a budget.
   */
  private applyPlanTarget(model: string, t: PlanTargetSum, work: Promise<void>[]): void {
    const min = this.cfgFor(model, undefined).minInstances;
    const target = Math.max(min, t.instances);
    this.plan.targets.set(model, { instances: target, gpu: t.gpu, byGpu: t.byGpu });
    if (this.opts.planStrategy === "lt-i") return; // applied on the ticks
    const snap = this.snapshot(model, undefined);
    const floor = this.demandFloor(model, t.gpu);
    const total = snap.serving + snap.pending;
    // Up to the plan (or what the demand needs); down to the plan, but not below what it held lately.
    const delta = target > total ? Math.max(target, floor.up) - total : Math.max(target, floor.hold) - total;
    // The plan's scale-downs happen at once; its scale-ups become a budget spent when utilisation agrees.
    // Scale-downs the recent demand holds back now are owed (a negative budget): paid back on the ticks,
    // one idle instance at a time, once the demand's hold has come down — on the plan's schedule, not
    // only at the next plan an hour later.
    // Nor below what the instances' load needs now (interactive and the batch work being released): what
    // the plan would take from busy instances the budget's utilisation rule would scale straight back up
    // (measured: a lagging forecast's plan halved a busy endpoint, emergency scale-ups restored it within
    // the hour, IW-normal starved in between) — it is owed as well.
    const busy = Math.ceil(
      (snap.serving * snap.utilization) / this.cfgFor(model, undefined).scaleUpAbove - 1e-9,
    );
    const down = delta < 0 ? Math.max(0, Math.min(-delta, snap.serving - Math.max(min, busy))) : 0;
    const owed = target - Math.max(target, floor.hold) - (-delta - down);
    this.plan.budget.set(model, delta > 0 ? delta : Math.min(0, owed));
    for (let i = 0; i < down; i++) work.push(this.scaleDown(model, undefined, true));
  }

  /** Instances per model the current plan asks of this region (empty before the first plan). */
  planTargets(): Record<string, number> {
    return Object.fromEntries([...this.plan.targets].map(([m, t]) => [m, t.instances]));
  }

  queueDepth(model?: string): number {
    return this.niw.depth(model);
  }

  /** Whether a finished IW-fast request missed its TTFT target; undefined for any other or unjudged one. */
  private iwFastMissed(d: Payload<typeof RequestDone>): boolean | undefined {
    if (d.tier !== "iw-fast" || !judgedForSlo(d)) return undefined;
    return d.outcome !== "ok" || d.ttftMs > this.settings.sloTtftMs;
  }

  private recordSlo(d: Payload<typeof RequestDone>): void {
    const missed = this.iwFastMissed(d);
    if (missed === undefined) return;
    const pool = this.view.get(d.instanceId)?.pool;
    const k = this.keys.key(d.model, pool ?? "");
    let w = this.slo.get(k);
    if (!w) {
      w = new SloWindow();
      this.slo.set(k, w);
    }
    w.add(this.clock.now(), missed);
  }

  /** A finished feasible IW-fast request feeds the SLO feedback of its model's capacity here. */
  private recordCalibration(d: Payload<typeof RequestDone>): void {
    const missed = this.iwFastMissed(d);
    if (missed === undefined) return;
    const timing = this.opts.promptTiming;
    if (timing) {
      const gpuType = this.view.get(d.instanceId)?.gpuType;
      if (
        promptVerdict(timing, { model: d.model, gpuType, tier: d.tier, inputTokens: d.inputTokens })
          .infeasible
      )
        return;
    }
    this.calibration.record(d.model, this.clock.now(), missed);
  }

  private onLoad(r: Payload<typeof LoadReport>): void {
    if (this.view.bootArrived(r.nodeId)) void this.saveBoots();
    this.view.apply(r);
  }

  snapshot(model: string, pool: string | undefined): EndpointSnapshot {
    const ek = this.keys.key(model, pool ?? "");
    let serving = 0;
    let pending = 0;
    for (const i of this.view.endpoint(model, pool)) {
      if (i.state === "serving") serving++;
      else if (ARRIVING.has(i.state)) pending++;
    }
    pending += this.view.pendingBoots(model, pool);
    return {
      serving,
      pending,
      utilization: this.utilization(model, pool),
      cooldownUntilMs: this.scaling.cooldownUntilMs(ek),
      sloMissRate: this.slo.get(ek)?.missRate(this.clock.now()) ?? 0,
      wanted: this.wanted(model),
      idleMs: this.clock.now() - (this.view.busyAt(ek) ?? this.clock.now()),
    };
  }

  /**
   * The serving instances' load (KV or sequence slots), with the batch work released to them since their
   * last report; 1 with none serving. Alone (not through `snapshot`) because the NIW feed asks for it after
   * every finished job.
   */
  private utilization(model: string, pool: string | undefined): number {
    let used = 0;
    let cap = 0;
    for (const i of this.view.endpoint(model, pool)) {
      if (i.state !== "serving") continue;
      used += loadWithReleased(i) * i.kvCapacityTokens;
      cap += i.kvCapacityTokens;
    }
    return cap > 0 ? Math.min(1, used / cap) : 1;
  }

  /** Requests are held for this model here (in the last 30 s), or a queued batch job nears its deadline. */
  private wanted(model: string): boolean {
    const now = this.clock.now();
    const at = this.wantedAtMs.get(model);
    if (at !== undefined && now - at <= 30_000) return true;
    const next = this.niw.nextDeadlineMs(model);
    return next !== undefined && next - now <= this.settings.niw.escalateBeforeDeadlineMs;
  }

  /** The reactive settings of one endpoint: defaults, then the pool's, then the model's. */
  private cfgFor(model: string, pool: string | undefined): ReactiveConfig {
    return {
      ...this.settings.reactive,
      ...(pool ? this.opts.poolReactive?.[pool] : undefined),
      ...this.opts.endpoints?.[model],
    };
  }

  private tick(): void | Promise<void> {
    const now = this.clock.now();
    const work: Promise<void>[] = [];
    this.scaling.releaseStopped(now, work);
    for (const model of this.opts.models) {
      if (this.opts.planStrategy && this.plan.targets.has(model)) this.followPlan(model, now, work);
      else for (const pool of this.pools()) this.scaleReactively(model, pool, now, work);
      if (this.opts.mode === "unified") this.niw.release(model);
    }
    if (work.length) return Promise.all(work).then(() => {});
  }

  /** One reactive scaling tick of an endpoint: `reactiveDecision` decides, this carries it out. */
  private scaleReactively(model: string, pool: string | undefined, now: number, work: Promise<void>[]): void {
    const cfg = this.cfgFor(model, pool);
    const snap = this.snapshot(model, pool);
    const decision = reactiveDecision(snap, cfg, now);
    if (decision === "up") {
      if (snap.serving + snap.pending === 0 && cfg.minInstances === 0) this.actions.coldStart++;
      else if (snap.utilization <= cfg.scaleUpAbove && sloPressure(snap, cfg)) this.actions.sloUp++;
      const n = Math.min(scaleUpCount(snap, cfg), this.settings.planExecution.maxActionsPerTick);
      for (let i = 0; i < n; i++) work.push(this.scaling.scaleUp(model, pool, undefined, i > 0));
    } else if (decision === "down") work.push(this.scaleDown(model, pool));
  }

  /** One scaling tick of an endpoint under a plan (LT-I, LT-U or LT-UA): `planDecision` decides, this carries it out. */
  private followPlan(model: string, now: number, work: Promise<void>[]): void {
    const plan = this.plan.targets.get(model)!;
    const mix = this.gpuMix(model);
    const gpu = mix.add ?? plan.gpu;
    const snap = this.snapshot(model, undefined);
    const cfg = this.cfgFor(model, undefined);
    const measured = this.demandFloor(model, gpu);
    // The capacity model's count holds the endpoint (not its minimum, not utilisation): its factor may rise.
    const was = this.calibration.factor(model);
    const factor = this.calibration.update(
      model,
      now,
      measured.up > cfg.minInstances && measured.up >= snap.serving,
    );
    if (factor !== was)
      this.log.info({ model, from: was, to: factor }, "SLO feedback moved the model's capacity factor here");
    const d = planDecision({
      strategy: this.opts.planStrategy!,
      nowMs: now,
      snap,
      cfg,
      exec: this.settings.planExecution,
      plan: { instances: plan.instances, gpu: plan.gpu },
      mix: { add: mix.add, hasSurplus: mix.surplus.size > 0 },
      measured,
      aheadNeed: this.plan.aheadNeed(model, gpu),
      budget: this.plan.budget.get(model) ?? 0,
      observedTps: this.plan.observedTps.get(model) ?? 0,
      forecastTps: this.plan.forecastTps.get(model) ?? 0,
    });
    if (d.reason) this.actions[d.reason.name] += d.reason.count;
    if (d.budget !== undefined) this.plan.budget.set(model, d.budget);
    for (const a of d.actions)
      work.push(
        a.kind === "up"
          ? this.scaling.scaleUp(model, undefined, a.gpu, a.batch, a.strictGpu === true)
          : this.scaleDown(model, undefined, a.batch),
      );
  }

  /** This model's instances against the plan's GPU types (see `gpuMix`); nothing to add or give back without a plan. */
  private gpuMix(model: string): { add: string | undefined; surplus: Set<string> } {
    const plan = this.plan.targets.get(model);
    if (!plan) return { add: undefined, surplus: new Set<string>() };
    return gpuMix(plan.byGpu, this.view.endpoint(model, undefined));
  }

  /** Under a plan, GPU types above their planned count go first (this is how a migration completes). */
  private scaleDown(model: string, pool: string | undefined, batch = false): Promise<void> {
    const surplus = pool === undefined ? this.gpuMix(model).surplus : new Set<string>();
    return this.scaling.scaleDown(model, pool, surplus, batch);
  }

  private async saveBoots(): Promise<void> {
    this.view.pruneBoots(this.clock.now());
    await this.kvPut("sage-boots", this.opts.region, { boots: this.view.bootsInFlight() });
  }

  /** VMs booting that have not reported yet (from this agent or, after a restart, its predecessor). */
  bootsInFlight(): BootInFlight[] {
    return this.view.bootsInFlight();
  }
}

/** A plan's target for a model it plans at zero in this region. */
function noneHere(): PlanTargetSum {
  return { instances: 0, gpu: undefined, best: -1, byGpu: {} };
}
