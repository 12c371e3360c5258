import {
  InferenceRequest,
  type InstanceState,
  LoadReport,
  NiwJob,
  NodeCommand,
  type Payload,
  RequestDone,
  VmCommand,
} from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";
import { type Job, NiwQueue } from "./niw-queue.js";
import {
  DEFAULT_NIW_RELEASE,
  DEFAULT_REACTIVE,
  type EndpointSnapshot,
  type NiwReleaseConfig,
  niwReleaseCount,
  type ReactiveConfig,
  reactiveDecision,
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
  niw?: Partial<NiwReleaseConfig>;
  scalingIntervalMs?: number;
  /** Cool-downs after each kind of scale-up: the time the new capacity takes to arrive. */
  cooldowns?: { reclaimMs?: number; swapMs?: number; bootMs?: number };
  staleAfterMs?: number;
}

interface InstanceInfo {
  instanceId: string;
  nodeId: string;
  model: string;
  pool: string | undefined;
  state: InstanceState;
  kvUtilization: number;
  kvCapacityTokens: number;
  atMs: number;
  /** NIW tokens released here since the last report. */
  releasedTokens: number;
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
  private readonly queues = new Map<string, NiwQueue>();
  private readonly cooldownUntil = new Map<string, number>();
  private readonly reactive: ReactiveConfig;
  private readonly niwCfg: NiwReleaseConfig;
  private readonly cooldowns: Required<NonNullable<RegionAgentOptions["cooldowns"]>>;
  private readonly staleAfterMs: number;
  private commandSeq = 0;
  readonly actions = {
    reclaim: 0,
    swap: 0,
    boot: 0,
    makeSpot: 0,
    bootRefused: 0,
    niwReleased: 0,
    niwEscalated: 0,
  };

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
  }

  private pools(): (string | undefined)[] {
    return this.opts.mode === "siloed" ? ["iw", "niw"] : [undefined];
  }

  protected setup(): void {
    const region = this.opts.region;
    this.on(LoadReport, { region }, (r) => this.onLoad(r), { broadcast: true });
    if (this.opts.mode === "unified") {
      this.on(NiwJob, { region }, (job) => this.enqueue(job), { broadcast: true });
      this.on(RequestDone, { region }, (d) => this.releaseNiw(d.model), { broadcast: true });
    }
    this.every(this.opts.scalingIntervalMs ?? 15_000, () => this.tick());
  }

  queueDepth(model?: string): number {
    if (model !== undefined) return this.queues.get(model)?.size ?? 0;
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  private onLoad(r: Payload<typeof LoadReport>): void {
    const cur = this.instances.get(r.instanceId);
    // A command we just issued is not undone by a report that predates it.
    if (cur && cur.atMs > r.atMs) return;
    this.instances.set(r.instanceId, {
      instanceId: r.instanceId,
      nodeId: r.nodeId,
      model: r.model,
      pool: r.pool,
      state: r.state,
      kvUtilization: r.kvUtilization,
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
    let used = 0;
    let cap = 0;
    let serving = 0;
    let pending = 0;
    for (const i of this.endpointInstances(model, pool)) {
      if (i.state === "serving") {
        serving++;
        used += (i.kvUtilization + i.releasedTokens / i.kvCapacityTokens) * i.kvCapacityTokens;
        cap += i.kvCapacityTokens;
      } else if (ARRIVING.has(i.state)) pending++;
    }
    return {
      serving,
      pending,
      utilization: cap > 0 ? Math.min(1, used / cap) : 1,
      cooldownUntilMs: this.cooldownUntil.get(`${model}|${pool ?? ""}`) ?? 0,
    };
  }

  private tick(): void | Promise<void> {
    const now = this.clock.now();
    const work: Promise<void>[] = [];
    for (const model of this.opts.models) {
      for (const pool of this.pools()) {
        const cfg = { ...this.reactive, ...(pool ? this.opts.poolReactive?.[pool] : undefined) };
        const decision = reactiveDecision(this.snapshot(model, pool), cfg, now);
        if (decision === "up") work.push(this.scaleUp(model, pool));
        else if (decision === "down") work.push(this.scaleDown(model, pool));
      }
      if (this.opts.mode === "unified") this.releaseNiw(model);
    }
    if (work.length) return Promise.all(work).then(() => {});
  }

  private setCooldown(model: string, pool: string | undefined, ms: number): void {
    this.cooldownUntil.set(`${model}|${pool ?? ""}`, this.clock.now() + ms);
  }

  private async scaleUp(model: string, pool: string | undefined): Promise<void> {
    const now = this.clock.now();
    const spot = [...this.instances.values()].filter(
      (i) => i.state === "spot" && now - i.atMs <= this.staleAfterMs,
    );
    const own = spot.find((i) => i.model === model);
    const other = own ? undefined : spot.sort((a, b) => a.instanceId.localeCompare(b.instanceId))[0];
    const target = own ?? other;
    if (target) {
      const action = own ? "reclaim" : "swap";
      this.setCooldown(model, pool, own ? this.cooldowns.reclaimMs : this.cooldowns.swapMs);
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
    this.setCooldown(model, pool, this.cooldowns.bootMs);
    for (const gpuType of this.opts.gpuTypes) {
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
        return;
      }
    }
    this.actions.bootRefused++;
  }

  private async scaleDown(model: string, pool: string | undefined): Promise<void> {
    const serving = this.endpointInstances(model, pool)
      .filter((i) => i.state === "serving")
      .sort((a, b) => a.kvUtilization - b.kvUtilization || a.instanceId.localeCompare(b.instanceId));
    const victim = serving[0];
    if (!victim) return;
    this.setCooldown(model, pool, this.reactive.scaleDownCooldownMs);
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

  private enqueue(job: Job): void {
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
    let budget = niwReleaseCount(this.snapshot(model, undefined).utilization, this.niwCfg);
    for (let n = 0; n < this.niwCfg.maxPerTick && q.size > 0; n++) {
      const head = q.peek()!;
      const urgent = head.deadlineMs - now <= this.niwCfg.escalateBeforeDeadlineMs;
      if (!urgent && budget <= 0) break;
      const target = this.leastLoaded(model);
      if (!target) break;
      q.pop();
      if (urgent) this.actions.niwEscalated++;
      else budget--;
      this.actions.niwReleased++;
      target.releasedTokens += head.inputTokens + head.maxOutputTokens;
      this.publish(
        InferenceRequest,
        { node: target.nodeId },
        {
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
        },
      );
    }
  }

  private leastLoaded(model: string): InstanceInfo | undefined {
    let best: InstanceInfo | undefined;
    let bestU = Number.POSITIVE_INFINITY;
    for (const i of this.endpointInstances(model, undefined)) {
      if (i.state !== "serving") continue;
      const u = i.kvUtilization + i.releasedTokens / i.kvCapacityTokens;
      if (u < bestU) {
        best = i;
        bestU = u;
      }
    }
    return best;
  }

  private nextCommandId(): string {
    return `${this.identity.id}-c${this.commandSeq++}`;
  }
}
