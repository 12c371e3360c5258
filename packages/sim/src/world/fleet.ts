import {
  type Completion,
  DEFAULT_MAX_NUM_SEQS,
  gpuSpec,
  Instance,
  type InstanceRequest,
  type PerformanceModel,
  type SchedulingPolicy,
} from "@sageserve/engine";
import {
  InferenceRequest,
  type InstanceState,
  InstanceTransition,
  KeyCache,
  LoadReport,
  NodeCommand,
  nodeCommandStep,
  type Payload,
  RequestDone,
  RouteRequest,
  VmCommand,
} from "@sageserve/protocol";
import { Actor, type ActorContext, ClockEvent, eventPoster } from "@sageserve/runtime";
import { GpuLedger, PAID_STATES } from "./ledger.js";

export interface FleetTimings {
  /** Boot a new VM and load its model (reference: 155 s). */
  spinUpMs: number;
  /** Bring a spot VM back into service with its model still loaded (reference: 65 s). */
  reclaimMs: number;
  /** Load another model onto an existing VM — warm migration (reference: 150 s). */
  swapMs: number;
}

/** Longest engine step (ms) the default token budget allows: a quarter of the IW-fast TTFT target. */
export const DEFAULT_STEP_BUDGET_MS = 250;

/** Sequences one instance runs at once (vLLM's max_num_seqs; reported as LoadReport.maxRunning). */
export const DEFAULT_MAX_BATCH = DEFAULT_MAX_NUM_SEQS;

/** Keep-alive interval of an idle instance's load reports (routers and agents go stale after 30 s). */
export const IDLE_REPORT_MS = 20_000;

export const DEFAULT_TIMINGS: FleetTimings = { spinUpMs: 155_000, reclaimMs: 65_000, swapMs: 150_000 };

/** A request that missed its TTFT target, and where its time went (ms). */
export interface SlowRequest {
  id: string;
  tier: string;
  model: string;
  region: string;
  gpu: string;
  instanceId: string;
  inputTokens: number;
  outputTokens: number;
  arrivalMs: number;
  /** Arrival → the instance received it: the router's hold, re-routes and the hop. */
  routerMs: number;
  /** Received → admitted to the engine (first prefill chunk scheduled): the instance's queue. */
  queueMs: number;
  /** Admitted → first token: prefill steps (shared with other requests' chunks and decodes), recompute. */
  prefillMs: number;
  ttftMs: number;
  preemptions: number;
  /** This prompt's prefill alone on an idle instance of this (model, GPU). */
  idlePrefillMs: number;
}

export interface FleetOptions {
  perf: PerformanceModel;
  regions: string[];
  /** Most VMs of each GPU type a region can have (default 200). */
  supply?: Record<string, Record<string, number>>;
  timings?: Partial<FleetTimings>;
  loadReportMs?: number;
  /** GPU-hours are compared over [start, start + horizonMs]; later time is reported apart. */
  horizonMs: number;
  /** Sequences per instance (default DEFAULT_MAX_BATCH). */
  maxBatch?: number;
  /** Most of an instance's KV cache batch (NIW) requests may hold (default 1: no limit). */
  niwKvShare?: number;
  /** Tokens per engine step (vLLM's max_num_batched_tokens); default: from `stepBudgetMs`. */
  maxPrefillTokens?: number;
  /**
   * Without `maxPrefillTokens`, each instance's step budget is the most tokens whose prefill takes at
   * most this long on its (model, GPU) (`PerformanceModel.stepTokenBudget`; default 250 ms).
   */
  stepBudgetMs?: number;
  /**
   * Requests whose first token came later than their tier's TTFT target, one record each, with where
   * the time went (`sageserve sim --trace-slow`).
   */
  traceSlow?: { ttftMs: Partial<Record<string, number>>; write(r: SlowRequest): void };
  /**
   * Interactive requests/s one instance of (model, GPU) serves within its TTFT SLOs (SloCapacity): sent
   * in load reports with the instance's smoothed IW arrival rate. Absent = not reported.
   */
  iwCapacityRps?: (model: string, gpu: string) => number | undefined;
  /** Tokens per KV block (vLLM's block_size); default 16. */
  blockSize?: number;
  /** Engine queue order: "priority" (tiers, default) or "fcfs" (vLLM's default policy). */
  scheduling?: SchedulingPolicy;
  /** Attempts to re-route a request that reached an instance that cannot serve it. */
  maxReroutes?: number;
  /**
   * Region outages (ms since the start): at `startMs` every VM of the region fails — its requests go
   * back to the routers — and until `endMs` the region boots nothing.
   */
  outages?: { region: string; startMs: number; endMs: number }[];
}

export interface Vm {
  nodeId: string;
  instanceId: string;
  region: string;
  gpu: string;
  gpus: number;
  state: InstanceState;
  model: string;
  pool: string | undefined;
  instance: Instance | undefined;
  sinceMs: number;
  wakeAtMs: number;
  wakeVersion: number;
  /** What a draining VM becomes when its last request finishes. */
  afterDrain: InstanceState | undefined;
  /** Interactive arrivals since the last load report, and their smoothed rate (req/s). */
  iwArrivals: number;
  iwRps: number;
  rateAtMs: number;
  /** When the last load report went out, and the state it reported if the instance was idle then. */
  reportedAtMs: number;
  idleReport: InstanceState | undefined;
}

/**
 * The simulated hardware of every region: VMs per GPU type, each holding one
 * instance of a model with analytic continuous batching. It stands in for the
 * node agents (load reports, request execution, model load/unload/swap), the
 * inference engines and the cloud's VM provider, and speaks to the real actors
 * only through their messages.
 */
export class SimFleet extends Actor {
  readonly vms = new Map<string, Vm>();
  private readonly byInstance = new Map<string, Vm>();
  readonly ledger: GpuLedger;
  private readonly timings: FleetTimings;
  private readonly reroutes = new Map<string, number>();
  private nextVm = 0;
  readonly startMs: number;
  /** Requests that found an instance unable to serve them and were re-routed. */
  rerouted = 0;
  failed = 0;
  /** Must stay 0: a completion on a VM that was not serving. */
  servedWhileNotServing = 0;
  readonly tokensByTier = new Map<string, Record<string, number>>();
  /** GPU type of every instance ever created (kept after release: a late RequestDone still names it). */
  private readonly gpuByInstance = new Map<string, string>();
  private readonly keys = new KeyCache();

  constructor(
    ctx: ActorContext,
    private readonly opts: FleetOptions,
  ) {
    super(ctx, {
      role: "sim-fleet",
      id: "sim-fleet",
      description: "simulated VMs, engines, node agents and VM provider",
    });
    this.timings = { ...DEFAULT_TIMINGS, ...opts.timings };
    this.startMs = ctx.clock.now();
    this.ledger = new GpuLedger(this.startMs + opts.horizonMs);
  }

  protected setup(): void {
    this.on(InferenceRequest, {}, (r) => this.onInfer(r), { broadcast: true });
    this.handle(NodeCommand, {}, (c, meta) => this.onCommand(c, meta.params.node ?? ""), { broadcast: true });
    this.handle(VmCommand, {}, (c, meta) => this.onVm(c, meta.params.region ?? ""), { broadcast: true });
    this.every(this.opts.loadReportMs ?? 5_000, () => {
      for (const vm of this.vms.values()) this.report(vm, true);
    });
    this.t0 = this.clock.now();
    for (const o of this.opts.outages ?? [])
      this.after(Math.max(0, o.startMs), () => this.failRegion(o.region));
  }

  /** Start of the run (outage windows are relative to it). */
  private t0 = 0;
  outageFailures = 0;

  private inOutage(region: string): boolean {
    const t = this.clock.now() - this.t0;
    return (this.opts.outages ?? []).some((o) => o.region === region && t >= o.startMs && t < o.endMs);
  }

  /** A region loses its GPUs: every VM fails, and its requests are handed back to the routers. */
  private failRegion(region: string): void {
    for (const vm of this.vms.values()) {
      if (vm.region !== region || vm.state === "stopped" || vm.state === "failed") continue;
      const orphans = vm.instance?.takeAll() ?? [];
      vm.instance = undefined;
      vm.afterDrain = undefined;
      vm.wakeVersion++;
      this.outageFailures++;
      this.transition(vm, "failed", "region outage");
      for (const r of orphans) this.reroute(r, vm.model, region);
    }
  }

  /** Create a serving VM at start (the initial deployment). */
  deploy(region: string, gpu: string, model: string, pool?: string): Vm {
    const vm = this.newVm(region, gpu, model, pool, "serving");
    vm.instance = this.newInstance(vm);
    this.report(vm);
    return vm;
  }

  private newVm(
    region: string,
    gpu: string,
    model: string,
    pool: string | undefined,
    state: InstanceState,
  ): Vm {
    const nodeId = `${region}-${gpu}-${this.nextVm++}`;
    const vm: Vm = {
      nodeId,
      instanceId: `${nodeId}-i0`,
      region,
      gpu,
      gpus: gpuSpec(gpu).gpusPerVm,
      state,
      model,
      pool,
      instance: undefined,
      sinceMs: this.clock.now(),
      wakeAtMs: Number.POSITIVE_INFINITY,
      wakeVersion: 0,
      afterDrain: undefined,
      iwArrivals: 0,
      iwRps: 0,
      rateAtMs: this.clock.now(),
      reportedAtMs: Number.NEGATIVE_INFINITY,
      idleReport: undefined,
    };
    this.vms.set(nodeId, vm);
    this.byInstance.set(vm.instanceId, vm);
    this.gpuByInstance.set(vm.instanceId, gpu);
    return vm;
  }

  /** The GPU type of an instance this fleet created (the metrics judge SLO feasibility by it). */
  gpuOf(instanceId: string): string | undefined {
    return this.gpuByInstance.get(instanceId);
  }

  private newInstance(vm: Vm): Instance {
    const perf = this.opts.perf;
    const { model, gpu } = vm;
    return new Instance({
      kvCapacityTokens: perf.kvTokenCapacity(model, gpu),
      timing: perf.timingFor(model, gpu),
      nowMs: this.clock.now(),
      maxNumSeqs: this.opts.maxBatch ?? DEFAULT_MAX_BATCH,
      maxBatchedTokens: Math.max(
        this.opts.maxBatch ?? DEFAULT_MAX_BATCH,
        this.opts.maxPrefillTokens ??
          perf.stepTokenBudget(model, gpu, this.opts.stepBudgetMs ?? DEFAULT_STEP_BUDGET_MS),
      ),
      niwKvShare: this.opts.niwKvShare ?? 1,
      indexIds: false,
      ...(this.opts.blockSize ? { blockSize: this.opts.blockSize } : {}),
      ...(this.opts.scheduling ? { scheduling: this.opts.scheduling } : {}),
    });
  }

  // ------------------------------------------------------------ requests

  private onInfer(r: Payload<typeof InferenceRequest>): void {
    const vm = this.byInstance.get(r.instanceId);
    // Every field present from the start: one object shape through the engine's hot paths.
    const req: InstanceRequest = {
      receivedMs: this.clock.now(),
      id: r.requestId,
      seq: 0,
      tier: r.tier,
      arrivalMs: r.arrivalMs,
      inputTokens: r.inputTokens,
      outputTokens: Math.max(1, r.maxOutputTokens),
      deadlineMs: r.deadlineMs,
      admittedMs: undefined,
      firstTokenMs: undefined,
      preemptions: undefined,
    };
    if (!vm || vm.state !== "serving" || vm.model !== r.model || !vm.instance) {
      this.reroute(req, r.model, r.originRegion);
      return;
    }
    if (!vm.instance.submit(req, this.clock.now())) {
      this.fail(req, r.model, vm.region, vm.instanceId);
      return;
    }
    if (req.tier !== "niw") vm.iwArrivals++;
    this.wake(vm);
  }

  /** Hand a request back to the routers (the instance was draining, swapped, or gone). */
  private reroute(req: InstanceRequest, model: string, region: string): void {
    const n = (this.reroutes.get(req.id) ?? 0) + 1;
    if (n > (this.opts.maxReroutes ?? 10)) {
      this.reroutes.delete(req.id);
      this.fail(req, model, region, "-");
      return;
    }
    this.reroutes.set(req.id, n);
    this.rerouted++;
    // Give load reports a moment to catch up before trying again.
    this.after(n * 1000, () => {
      this.publish(
        RouteRequest,
        { region, model },
        {
          requestId: req.id,
          model,
          tier: req.tier,
          originRegion: region,
          inputTokens: req.inputTokens,
          maxOutputTokens: req.outputTokens,
          arrivalMs: req.arrivalMs,
          ...(req.deadlineMs === undefined ? {} : { deadlineMs: req.deadlineMs }),
          stream: false,
          attempt: n,
        },
      );
    });
  }

  private fail(req: InstanceRequest, model: string, region: string, instanceId: string): void {
    this.failed++;
    this.publish(
      RequestDone,
      { region, model },
      {
        requestId: req.id,
        model,
        tier: req.tier,
        region,
        instanceId,
        outcome: "failed",
        inputTokens: req.inputTokens,
        outputTokens: 0,
        arrivalMs: req.arrivalMs,
        ttftMs: 0,
        tbtMs: 0,
        e2eMs: this.clock.now() - req.arrivalMs,
      },
    );
  }

  private wake(vm: Vm): void {
    const inst = vm.instance;
    if (!inst) return;
    const t = inst.nextEventMs();
    if (t === vm.wakeAtMs || !Number.isFinite(t)) {
      if (!Number.isFinite(t)) vm.wakeAtMs = t;
      return;
    }
    vm.wakeAtMs = t;
    this.postEvent(t - this.clock.now(), new Wake(this, vm, ++vm.wakeVersion));
  }

  /** A scheduled engine step of `vm`; a stale one (rescheduled since) does nothing. */
  onWake(vm: Vm, version: number): void {
    if (vm.wakeVersion !== version) return;
    vm.wakeAtMs = Number.POSITIVE_INFINITY;
    this.stepVm(vm);
  }

  private readonly postEvent = eventPoster(this.clock);

  private readonly done: Completion[] = [];

  private stepVm(vm: Vm): void {
    const inst = vm.instance;
    if (!inst) return;
    this.done.length = 0;
    inst.step(this.clock.now(), this.done);
    for (const c of this.done) this.complete(vm, c);
    if (vm.state === "draining" && inst.inFlight === 0) this.finishDrain(vm);
    else this.wake(vm);
  }

  private complete(vm: Vm, c: Completion): void {
    if (vm.state !== "serving" && vm.state !== "draining") this.servedWhileNotServing++;
    const r = c.req;
    if (this.reroutes.size > 0) this.reroutes.delete(r.id);
    const first = r.firstTokenMs ?? c.doneMs;
    if (
      this.opts.traceSlow &&
      first - r.arrivalMs > (this.opts.traceSlow.ttftMs[r.tier] ?? Number.POSITIVE_INFINITY)
    )
      this.opts.traceSlow.write({
        id: r.id,
        tier: r.tier,
        model: vm.model,
        region: vm.region,
        gpu: vm.gpu,
        instanceId: vm.instanceId,
        inputTokens: r.inputTokens,
        outputTokens: r.outputTokens,
        arrivalMs: r.arrivalMs,
        routerMs: (r.receivedMs ?? r.arrivalMs) - r.arrivalMs,
        queueMs: (r.admittedMs ?? first) - (r.receivedMs ?? r.arrivalMs),
        prefillMs: first - (r.admittedMs ?? first),
        ttftMs: first - r.arrivalMs,
        preemptions: r.preemptions ?? 0,
        idlePrefillMs: this.opts.perf.prefillMs(vm.model, vm.gpu, r.inputTokens),
      });
    const key = this.keys.key(vm.model, vm.region);
    let byTier = this.tokensByTier.get(key);
    if (byTier === undefined) {
      byTier = { "iw-fast": 0, "iw-normal": 0, niw: 0 };
      this.tokensByTier.set(key, byTier);
    }
    byTier[r.tier] = (byTier[r.tier] ?? 0) + r.inputTokens + r.outputTokens;
    const done: Payload<typeof RequestDone> = {
      requestId: r.id,
      model: vm.model,
      tier: r.tier,
      region: vm.region,
      instanceId: vm.instanceId,
      outcome: "ok",
      inputTokens: r.inputTokens,
      outputTokens: r.outputTokens,
      arrivalMs: r.arrivalMs,
      ttftMs: first - r.arrivalMs,
      tbtMs: r.outputTokens > 1 ? (c.doneMs - first) / (r.outputTokens - 1) : 0,
      e2eMs: c.doneMs - r.arrivalMs,
    };
    // Set only when there is one (no spread of a temporary object per request).
    if (r.deadlineMs !== undefined) done.deadlineMs = r.deadlineMs;
    this.publish(RequestDone, { region: vm.region, model: vm.model }, done);
  }

  // ------------------------------------------------------------ lifecycle

  /** Change state (and, for loads and swaps, the model and pool), closing the ledger interval first. */
  private transition(
    vm: Vm,
    to: InstanceState,
    reason: string,
    change: { model?: string; pool?: string | undefined } = {},
  ): void {
    const now = this.clock.now();
    this.ledger.add(
      { state: vm.state, model: vm.model, region: vm.region, gpu: vm.gpu, pool: vm.pool ?? "" },
      vm.gpus,
      vm.sinceMs,
      now,
    );
    const from = vm.state;
    if (change.model !== undefined) vm.model = change.model;
    if ("pool" in change) vm.pool = change.pool;
    vm.state = to;
    vm.sinceMs = now;
    this.publish(
      InstanceTransition,
      { region: vm.region, instance: vm.instanceId },
      {
        instanceId: vm.instanceId,
        nodeId: vm.nodeId,
        region: vm.region,
        model: vm.model,
        from,
        to,
        reason,
        atMs: now,
      },
    );
    this.report(vm);
  }

  private finishDrain(vm: Vm): void {
    const to = vm.afterDrain ?? "spot";
    vm.afterDrain = undefined;
    this.transition(vm, to, "drained");
  }

  /** Close every VM's open interval into the ledger (end of run). */
  closeLedger(): void {
    const now = this.clock.now();
    for (const vm of this.vms.values()) {
      this.ledger.add(
        { state: vm.state, model: vm.model, region: vm.region, gpu: vm.gpu, pool: vm.pool ?? "" },
        vm.gpus,
        vm.sinceMs,
        now,
      );
      vm.sinceMs = now;
    }
  }

  private onCommand(c: Payload<typeof NodeCommand>, nodeId: string) {
    const vm = this.vms.get(nodeId);
    const refuse = (message: string) => ({ commandId: c.commandId, accepted: false, message });
    if (!vm) return refuse(`no node ${nodeId}`);
    const ok = (state: InstanceState, etaMs?: number) => ({
      commandId: c.commandId,
      accepted: true,
      state,
      ...(etaMs === undefined ? {} : { etaMs }),
    });
    const model = c.model ?? vm.model;
    if (
      (c.action === "swap" || c.action === "load" || c.action === "reclaim") &&
      !this.opts.perf.has(model, vm.gpu)
    )
      return refuse(`no profile for ${model} on ${vm.gpu}`);
    // The lifecycle rule the live node agent follows too.
    const step = nodeCommandStep(
      { state: vm.state, model: vm.model, inFlight: vm.instance?.inFlight ?? 0 },
      c,
    );
    if (!step.accepted) return refuse(`node ${nodeId}: ${step.reason}`);
    switch (c.action) {
      case "make-spot":
      case "drain":
      case "unload": {
        if (step.to !== "draining") {
          vm.instance = undefined;
          this.transition(vm, "stopped", "unload");
          return ok("stopped");
        }
        vm.afterDrain = step.settlesIn;
        this.transition(vm, "draining", c.action);
        // Queued-but-unstarted work goes back to the routers; running requests finish here.
        for (const r of vm.instance?.takeWaiting() ?? []) this.reroute(r, vm.model, vm.region);
        if ((vm.instance?.inFlight ?? 0) === 0) this.finishDrain(vm);
        else this.wake(vm);
        return ok(vm.state);
      }
      case "reclaim":
      case "swap":
      case "load": {
        const state = step.to;
        const delay =
          state === "loading" && c.action !== "load" ? this.timings.reclaimMs : this.timings.swapMs;
        vm.instance = undefined;
        this.transition(vm, state, c.action, { model, pool: c.pool });
        this.after(delay, () => {
          if (vm.state !== state) return;
          vm.instance = this.newInstance(vm);
          this.transition(vm, "serving", `${c.action} done`);
        });
        return ok(state, delay);
      }
    }
  }

  private onVm(c: Payload<typeof VmCommand>, region: string) {
    const refuse = (message: string) => ({ commandId: c.commandId, accepted: false, message });
    if (!this.opts.regions.includes(region)) return refuse(`unknown region ${region}`);
    if (c.action === "release") {
      const vm = c.nodeId ? this.vms.get(c.nodeId) : undefined;
      if (!vm || (vm.state !== "spot" && vm.state !== "stopped" && vm.state !== "failed"))
        return refuse("release needs a spot, stopped or failed VM");
      this.transition(vm, "stopped", "released");
      this.vms.delete(vm.nodeId);
      this.byInstance.delete(vm.instanceId);
      return { commandId: c.commandId, accepted: true, nodeId: vm.nodeId };
    }
    const model = c.model;
    if (!model) return refuse("boot needs a model");
    if (!this.opts.perf.has(model, c.gpuType)) return refuse(`no profile for ${model} on ${c.gpuType}`);
    if (this.inOutage(region)) return refuse(`region ${region} is out of service (outage)`);
    const limit = this.opts.supply?.[region]?.[c.gpuType] ?? 200;
    let inUse = 0;
    for (const vm of this.vms.values())
      if (vm.region === region && vm.gpu === c.gpuType && vm.state !== "stopped") inUse++;
    if (inUse >= limit)
      return refuse(`GPU supply in ${region} exhausted: ${inUse}/${limit} ${c.gpuType} VMs`);
    const vm = this.newVm(region, c.gpuType, model, c.pool, "booting");
    this.report(vm);
    this.after(this.timings.spinUpMs, () => {
      if (vm.state !== "booting") return;
      vm.instance = this.newInstance(vm);
      this.transition(vm, "serving", "booted");
    });
    return { commandId: c.commandId, accepted: true, nodeId: vm.nodeId, etaMs: this.timings.spinUpMs };
  }

  /**
   * Publish `vm`'s load report. A periodic report of an instance that is idle and was idle in the same
   * state at its last report says nothing new: it is sent only as a keep-alive, every
   * IDLE_REPORT_MS (well inside the 30 s after which routers and region agents treat a report as stale).
   */
  private report(vm: Vm, periodic = false): void {
    const inst = vm.instance;
    const now = this.clock.now();
    const idle = (inst === undefined || inst.inFlight === 0) && (vm.iwRps === 0 || !this.opts.iwCapacityRps);
    if (periodic && idle && vm.idleReport === vm.state && now - vm.reportedAtMs < IDLE_REPORT_MS) return;
    vm.idleReport = idle ? vm.state : undefined;
    vm.reportedAtMs = now;
    const iwCapacityRps = this.opts.iwCapacityRps?.(vm.model, vm.gpu);
    if (iwCapacityRps && now > vm.rateAtMs) {
      // Smoothed over ~30 s: a scaling signal, not a burst detector (the first-token waits see bursts).
      const dt = now - vm.rateAtMs;
      vm.iwRps += ((vm.iwArrivals * 1000) / dt - vm.iwRps) * (1 - Math.exp(-dt / 30_000));
      vm.iwArrivals = 0;
      vm.rateAtMs = now;
    }
    const blocks = inst ? inst.kvBlocksUsed : 0;
    const util = inst ? Math.min(1, blocks / Math.max(1, inst.numBlocks)) : 0;
    const r: Payload<typeof LoadReport> = {
      instanceId: vm.instanceId,
      nodeId: vm.nodeId,
      region: vm.region,
      model: vm.model,
      gpuType: vm.gpu,
      state: vm.state,
      kvUtilization: util,
      memoryUtilization: util,
      running: inst?.batchSize ?? 0,
      waiting: inst?.waitingCount ?? 0,
      // KV the running requests hold + prompt and output of those queued: the router subtracts the
      // held part to rank instances by their queue (router policy `queuedTokens`).
      outstandingTokens: inst ? blocks * inst.blockSize + inst.waitingTokens : 0,
      tokensPerSecond: 0,
      kvCapacityTokens: inst?.kvCapacity ?? this.opts.perf.kvTokenCapacity(vm.model, vm.gpu),
      maxRunning: inst?.maxBatch ?? this.opts.maxBatch ?? DEFAULT_MAX_BATCH,
      atMs: now,
    };
    if (inst?.hasFirstTokenWaits) {
      const fast = inst.oldestWaitMs("iw-fast", now);
      const normal = inst.oldestWaitMs("iw-normal", now);
      if (fast) r.iwFastWaitMs = fast;
      if (normal) r.iwNormalWaitMs = normal;
    }
    if (iwCapacityRps) {
      r.iwRps = vm.iwRps;
      r.iwCapacityRps = iwCapacityRps;
    }
    if (vm.pool !== undefined) r.pool = vm.pool;
    this.publish(LoadReport, { region: vm.region, model: vm.model, instance: vm.instanceId }, r);
  }

  /** In-flight requests on all instances (for end-of-run drain). */
  inFlight(): number {
    let n = 0;
    for (const vm of this.vms.values()) n += vm.instance?.inFlight ?? 0;
    return n;
  }

  /** Paid (non-spot, not stopped) VMs per (model, region) right now. */
  paidVmCounts(): Map<string, number> {
    const m = new Map<string, number>();
    for (const vm of this.vms.values()) {
      if (!PAID_STATES.has(vm.state)) continue;
      const k = `${vm.model}|${vm.region}`;
      m.set(k, (m.get(k) ?? 0) + 1);
    }
    return m;
  }
}

/** A scheduled engine wake-up: itself the clock's event (one object, no closure or timer handle). */
class Wake extends ClockEvent {
  constructor(
    private readonly fleet: SimFleet,
    private readonly vm: Vm,
    private readonly version: number,
  ) {
    super();
  }
  fn(): void {
    this.fleet.onWake(this.vm, this.version);
  }
}
