import { type Completion, Instance, type InstanceRequest } from "@sageserve/engine";
import {
  InferenceRequest,
  type InstanceState,
  InstanceTransition,
  KeyCache,
  LoadReport,
  NodeCommand,
  nodeCommandStep,
  type Payload,
  pairKey,
  type ReplyIn,
  RequestDone,
  RouteRequest,
  RunCheck,
  VmCommand,
} from "@sageserve/protocol";
import { Actor, type ActorContext, ClockEvent, eventPoster } from "@sageserve/runtime";
import {
  acceptedNodeCommand,
  completedDone,
  failedDone,
  loadReportOf,
  refused,
  rerouteRequest,
  slowRequestOf,
  transitionOf,
} from "./fleet-messages.js";
import {
  type FleetOptions,
  IDLE_REPORT_MS,
  type ResolvedFleetOptions,
  resolveFleetOptions,
  supplyLimit,
} from "./fleet-options.js";
import { GpuLedger, PAID_STATES } from "./ledger.js";
import { createVm, ledgerKeyOf, type Vm } from "./vm.js";

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
  private readonly opts: ResolvedFleetOptions;
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
  /** Start of the run (outage windows are relative to it). */
  private t0 = 0;
  outageFailures = 0;
  private readonly postEvent = eventPoster(this.clock);
  /** The completions of one engine step (reused: no array per step). */
  private readonly done: Completion[] = [];

  constructor(ctx: ActorContext, opts: FleetOptions) {
    super(ctx, {
      role: "sim-fleet",
      id: "sim-fleet",
      description: "simulated VMs, engines, node agents and VM provider",
    });
    this.opts = resolveFleetOptions(opts);
    this.startMs = ctx.clock.now();
    this.ledger = new GpuLedger(this.startMs + opts.horizonMs, this.startMs);
  }

  protected setup(): void {
    this.on(InferenceRequest, {}, (r) => this.onInfer(r), { broadcast: true });
    this.handle(NodeCommand, {}, (c, meta) => this.onCommand(c, meta.params.node ?? ""), { broadcast: true });
    this.handle(RunCheck, {}, (c, meta) => this.onRunCheck(c, meta.params.node ?? ""), { broadcast: true });
    this.handle(VmCommand, {}, (c, meta) => this.onVm(c, meta.params.region ?? ""), { broadcast: true });
    this.every(this.opts.loadReportMs, () => {
      for (const vm of this.vms.values()) this.report(vm, true);
    });
    this.t0 = this.clock.now();
    for (const o of this.opts.outages) this.after(Math.max(0, o.startMs), () => this.failRegion(o.region));
  }

  private inOutage(region: string): boolean {
    const t = this.clock.now() - this.t0;
    return this.opts.outages.some((o) => o.region === region && t >= o.startMs && t < o.endMs);
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
    const vm = createVm(
      `${region}-${gpu}-${this.nextVm++}`,
      region,
      gpu,
      model,
      pool,
      state,
      this.clock.now(),
    );
    this.vms.set(vm.nodeId, vm);
    this.byInstance.set(vm.instanceId, vm);
    this.gpuByInstance.set(vm.instanceId, gpu);
    return vm;
  }

  /** The GPU type of an instance this fleet created (the metrics judge SLO feasibility by it). */
  gpuOf(instanceId: string): string | undefined {
    return this.gpuByInstance.get(instanceId);
  }

  private newInstance(vm: Vm): Instance {
    const { perf, maxBatch } = this.opts;
    const { model, gpu } = vm;
    return new Instance({
      kvCapacityTokens: perf.kvTokenCapacity(model, gpu),
      timing: perf.timingFor(model, gpu),
      nowMs: this.clock.now(),
      maxNumSeqs: maxBatch,
      maxBatchedTokens: Math.max(
        maxBatch,
        this.opts.maxPrefillTokens ?? perf.stepTokenBudget(model, gpu, this.opts.stepBudgetMs),
      ),
      niwKvShare: this.opts.niwKvShare,
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
    if (vm?.state !== "serving" || vm.model !== r.model || !vm.instance) {
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

  /**
   * A region agent asks which of the batch jobs it sent to this node run here: those the node's instance
   * holds (waiting or running). The simulated bus loses nothing and a finished job's RequestDone always
   * arrives, so nothing is reported done; a job handed back (re-routed) is not held.
   */
  private onRunCheck(c: Payload<typeof RunCheck>, nodeId: string): ReplyIn<typeof RunCheck> {
    const instance = this.vms.get(nodeId)?.instance;
    const running = instance ? c.requestIds.filter((id) => instance.generated(id) !== undefined) : [];
    return { running, done: [] };
  }

  /** Hand a request back to the routers (the instance was draining, swapped, or gone). */
  private reroute(req: InstanceRequest, model: string, region: string): void {
    const n = (this.reroutes.get(req.id) ?? 0) + 1;
    if (n > this.opts.maxReroutes) {
      this.reroutes.delete(req.id);
      this.fail(req, model, region, "-");
      return;
    }
    this.reroutes.set(req.id, n);
    this.rerouted++;
    // Give load reports a moment to catch up before trying again.
    this.after(n * 1000, () => {
      this.publish(RouteRequest, { region, model }, rerouteRequest(req, model, region, n));
    });
  }

  private fail(req: InstanceRequest, model: string, region: string, instanceId: string): void {
    this.failed++;
    this.publish(
      RequestDone,
      { region, model },
      failedDone(req, model, region, instanceId, this.clock.now()),
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
    const traceSlow = this.opts.traceSlow;
    if (traceSlow && first - r.arrivalMs > (traceSlow.ttftMs[r.tier] ?? Number.POSITIVE_INFINITY))
      traceSlow.write(slowRequestOf(vm, r, first, this.opts.perf));
    this.countTokens(vm, r);
    this.publish(RequestDone, { region: vm.region, model: vm.model }, completedDone(vm, c, first));
  }

  /** Tokens served per (model, region) and tier: the report splits GPU-hours by them. */
  private countTokens(vm: Vm, r: InstanceRequest): void {
    const key = this.keys.key(vm.model, vm.region);
    let byTier = this.tokensByTier.get(key);
    if (byTier === undefined) {
      byTier = { "iw-fast": 0, "iw-normal": 0, niw: 0 };
      this.tokensByTier.set(key, byTier);
    }
    byTier[r.tier] = (byTier[r.tier] ?? 0) + r.inputTokens + r.outputTokens;
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
    this.closeInterval(vm, now);
    const from = vm.state;
    if (change.model !== undefined) vm.model = change.model;
    if ("pool" in change) vm.pool = change.pool;
    vm.state = to;
    this.publish(
      InstanceTransition,
      { region: vm.region, instance: vm.instanceId },
      transitionOf(vm, from, reason, now),
    );
    this.report(vm);
  }

  /** Book `vm`'s time in its current state up to `nowMs` and start a new interval there. */
  private closeInterval(vm: Vm, nowMs: number): void {
    this.ledger.add(ledgerKeyOf(vm), vm.gpus, vm.sinceMs, nowMs);
    vm.sinceMs = nowMs;
  }

  private finishDrain(vm: Vm): void {
    const to = vm.afterDrain ?? "spot";
    vm.afterDrain = undefined;
    this.transition(vm, to, "drained");
  }

  /** Close every VM's open interval into the ledger (end of run). */
  closeLedger(): void {
    const now = this.clock.now();
    for (const vm of this.vms.values()) this.closeInterval(vm, now);
  }

  private onCommand(c: Payload<typeof NodeCommand>, nodeId: string) {
    const vm = this.vms.get(nodeId);
    if (!vm) return refused(c.commandId, `no node ${nodeId}`);
    const model = c.model ?? vm.model;
    if (
      (c.action === "swap" || c.action === "load" || c.action === "reclaim") &&
      !this.opts.perf.has(model, vm.gpu)
    )
      return refused(c.commandId, `no profile for ${model} on ${vm.gpu}`);
    // The lifecycle rule the live node agent follows too.
    const step = nodeCommandStep(
      { state: vm.state, model: vm.model, inFlight: vm.instance?.inFlight ?? 0 },
      c,
    );
    if (!step.accepted) return refused(c.commandId, `node ${nodeId}: ${step.reason}`);
    switch (c.action) {
      case "make-spot":
      case "drain":
      case "unload":
        return this.stopServing(vm, c, step.to, step.settlesIn);
      case "reclaim":
      case "swap":
      case "load":
        return this.startEngine(vm, c, step.to, model);
    }
  }

  /** Unload at once, or drain: running requests finish here, queued ones go back to the routers. */
  private stopServing(
    vm: Vm,
    c: Payload<typeof NodeCommand>,
    to: InstanceState,
    settlesIn: InstanceState | undefined,
  ) {
    if (to !== "draining") {
      vm.instance = undefined;
      this.transition(vm, "stopped", "unload");
      return acceptedNodeCommand(c.commandId, "stopped");
    }
    vm.afterDrain = settlesIn;
    this.transition(vm, "draining", c.action);
    // Queued-but-unstarted work goes back to the routers; running requests finish here.
    for (const r of vm.instance?.takeWaiting() ?? []) this.reroute(r, vm.model, vm.region);
    if ((vm.instance?.inFlight ?? 0) === 0) this.finishDrain(vm);
    else this.wake(vm);
    return acceptedNodeCommand(c.commandId, vm.state);
  }

  /** Reclaim from spot, swap models or load one: `state` (loading or swapping) until the engine is up. */
  private startEngine(vm: Vm, c: Payload<typeof NodeCommand>, state: InstanceState, model: string) {
    const { reclaimMs, swapMs } = this.opts.timings;
    const delay = state === "loading" && c.action !== "load" ? reclaimMs : swapMs;
    vm.instance = undefined;
    this.transition(vm, state, c.action, { model, pool: c.pool });
    this.after(delay, () => {
      if (vm.state !== state) return;
      vm.instance = this.newInstance(vm);
      this.transition(vm, "serving", `${c.action} done`);
    });
    return acceptedNodeCommand(c.commandId, state, delay);
  }

  private onVm(c: Payload<typeof VmCommand>, region: string) {
    if (!this.opts.regions.includes(region)) return refused(c.commandId, `unknown region ${region}`);
    if (c.action === "release") return this.release(c);
    const model = c.model;
    if (!model) return refused(c.commandId, "boot needs a model");
    if (!this.opts.perf.has(model, c.gpuType))
      return refused(c.commandId, `no profile for ${model} on ${c.gpuType}`);
    if (this.inOutage(region)) return refused(c.commandId, `region ${region} is out of service (outage)`);
    const limit = supplyLimit(this.opts.supply, region, c.gpuType);
    let inUse = 0;
    for (const vm of this.vms.values())
      if (vm.region === region && vm.gpu === c.gpuType && vm.state !== "stopped") inUse++;
    if (inUse >= limit)
      return refused(c.commandId, `GPU supply in ${region} exhausted: ${inUse}/${limit} ${c.gpuType} VMs`);
    const { spinUpMs } = this.opts.timings;
    const vm = this.newVm(region, c.gpuType, model, c.pool, "booting");
    this.report(vm);
    this.after(spinUpMs, () => {
      if (vm.state !== "booting") return;
      vm.instance = this.newInstance(vm);
      this.transition(vm, "serving", "booted");
    });
    return { commandId: c.commandId, accepted: true, nodeId: vm.nodeId, etaMs: spinUpMs };
  }

  /** Give a spot, stopped or failed VM back to the cloud. */
  private release(c: Payload<typeof VmCommand>) {
    const vm = c.nodeId ? this.vms.get(c.nodeId) : undefined;
    if (!vm || (vm.state !== "spot" && vm.state !== "stopped" && vm.state !== "failed"))
      return refused(c.commandId, "release needs a spot, stopped or failed VM");
    this.transition(vm, "stopped", "released");
    this.vms.delete(vm.nodeId);
    this.byInstance.delete(vm.instanceId);
    return { commandId: c.commandId, accepted: true, nodeId: vm.nodeId };
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
    const r = loadReportOf(vm, inst, now, this.opts.perf, this.opts.maxBatch, iwCapacityRps);
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
      const k = pairKey(vm.model, vm.region);
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
