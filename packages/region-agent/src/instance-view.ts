/**
 * The region agent's view of its region: every instance as its last load report described it, and the
 * VMs the provider is booting that have not reported yet. Bookkeeping only — scaling, the NIW feed and
 * the status summary read it (and mark the instances they just commanded) — kept apart so the actor
 * is left wiring messages to decisions.
 */
import {
  type InstanceState,
  instanceLoad,
  type KeyCache,
  type LoadReport,
  type Payload,
} from "@sageserve/protocol";
import type { Clock } from "@sageserve/runtime";

export interface InstanceInfo {
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
  /** NIW jobs released here since the last report (each takes a sequence slot). */
  releasedJobs: number;
  /** The engine's sequence slots (vLLM's max_num_seqs); 0: not reported. */
  maxRunning: number;
}

/**
 * An instance's load with the NIW work released to it since its last report: its KV tokens or, where its
 * slots are known, one sequence slot per job, whichever weighs more.
 */
export function loadWithReleased(i: InstanceInfo): number {
  const slots = i.maxRunning > 0 ? i.releasedJobs / i.maxRunning : 0;
  return i.load + Math.max(i.releasedTokens / i.kvCapacityTokens, slots);
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

/** One model's instances by state and its serving KV tokens (used, capacity), for the region's status. */
export interface ModelTally {
  instances: Partial<Record<InstanceState, number>>;
  used: number;
  cap: number;
}

export const ARRIVING: ReadonlySet<InstanceState> = new Set(["booting", "loading", "swapping"]);

export class InstanceView {
  readonly instances = new Map<string, InstanceInfo>();
  /**
   * VMs the provider accepted to boot that have not reported yet (a cloud VM is silent for minutes):
   * counted as arriving capacity, and kept in KV `sage-boots` so a restarted agent does not boot them again.
   */
  private readonly boots = new Map<string, BootInFlight>();
  /** Last time each "model|pool" endpoint had something running or waiting. */
  private readonly busyAtMs = new Map<string, number>();
  /**
   * Each "model|pool" endpoint's instances, in the order they first reported (the order `instances`
   * iterates in): `endpoint()` runs after every finished batch job, and a region holds every model's VMs.
   */
  private readonly byEndpoint = new Map<string, InstanceInfo[]>();
  /** Each instance's place in first-report order (its list in `byEndpoint` follows from its model and pool). */
  private readonly order = new Map<InstanceInfo, number>();
  private nextSeq = 0;

  constructor(
    private readonly clock: Clock,
    private readonly keys: KeyCache,
    readonly staleAfterMs: number,
  ) {}

  get(instanceId: string): InstanceInfo | undefined {
    return this.instances.get(instanceId);
  }

  /** The last time endpoint `ek` ("model|pool") had something running or waiting. */
  busyAt(ek: string): number | undefined {
    return this.busyAtMs.get(ek);
  }

  /** Take in an instance's load report (its node's boot, if one was pending, is settled by the caller). */
  apply(r: Payload<typeof LoadReport>): void {
    const ek = this.keys.key(r.model, r.pool ?? "");
    if (r.running + r.waiting > 0 || !this.busyAtMs.has(ek)) this.busyAtMs.set(ek, this.clock.now());
    const cur = this.instances.get(r.instanceId);
    // A command we just issued is not undone by a report that predates it.
    if (cur && cur.atMs > r.atMs) return;
    if (cur) {
      // Updated in place: a report every few seconds per instance allocates nothing.
      cur.nodeId = r.nodeId;
      cur.gpuType = r.gpuType;
      if (cur.model !== r.model || cur.pool !== r.pool) this.move(cur, r.model, r.pool);
      cur.state = r.state;
      cur.kvUtilization = r.kvUtilization;
      cur.load = instanceLoad(r);
      cur.kvCapacityTokens = r.kvCapacityTokens ?? 1;
      cur.atMs = r.atMs;
      cur.releasedTokens = 0;
      cur.releasedJobs = 0;
      cur.maxRunning = r.maxRunning ?? 0;
      return;
    }
    const info: InstanceInfo = {
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
      releasedJobs: 0,
      maxRunning: r.maxRunning ?? 0,
    };
    this.instances.set(r.instanceId, info);
    this.order.set(info, this.nextSeq++);
    this.listOf(ek).push(info); // the latest first report: last in order
  }

  /**
   * An instance now serves (or loads) another model or pool — its report says so, or the agent just
   * commanded a swap or reclaim: it moves to that endpoint's list, at its place in first-report order.
   */
  move(i: InstanceInfo, model: string, pool: string | undefined): void {
    const old = this.byEndpoint.get(this.keys.key(i.model, i.pool ?? "")) ?? [];
    const k0 = old.indexOf(i);
    if (k0 >= 0) old.splice(k0, 1);
    i.model = model;
    i.pool = pool;
    const seq = this.order.get(i);
    if (seq === undefined) return;
    const list = this.listOf(this.keys.key(model, pool ?? ""));
    let k = list.length;
    while (k > 0 && this.order.get(list[k - 1]!)! > seq) k--;
    list.splice(k, 0, i);
  }

  private listOf(ek: string): InstanceInfo[] {
    let list = this.byEndpoint.get(ek);
    if (!list) {
      list = [];
      this.byEndpoint.set(ek, list);
    }
    return list;
  }

  /** The endpoint's instances that reported recently enough to count (in first-report order). */
  endpoint(model: string, pool: string | undefined): InstanceInfo[] {
    const now = this.clock.now();
    const out: InstanceInfo[] = [];
    const list = this.byEndpoint.get(this.keys.key(model, pool ?? ""));
    if (list) for (const i of list) if (now - i.atMs <= this.staleAfterMs) out.push(i);
    return out;
  }

  /** The serving instance of `model` (unified pool) with the most room, counting NIW work just released to it. */
  leastLoaded(model: string): InstanceInfo | undefined {
    let best: InstanceInfo | undefined;
    let bestU = Number.POSITIVE_INFINITY;
    for (const i of this.endpoint(model, undefined)) {
      if (i.state !== "serving") continue;
      const u = loadWithReleased(i);
      if (u < bestU) {
        best = i;
        bestU = u;
      }
    }
    return best;
  }

  /** Spot VMs (recent reports) a scale-up may take; with `strictGpu`, only those of GPU type `gpu`. */
  spotVms(nowMs: number, gpu: string | undefined, strictGpu: boolean): InstanceInfo[] {
    return [...this.instances.values()].filter(
      (i) =>
        i.state === "spot" &&
        nowMs - i.atMs <= this.staleAfterMs &&
        (!strictGpu || gpu === undefined || i.gpuType === gpu),
    );
  }

  /** Some instance on this node has reported. */
  heardFromNode(nodeId: string): boolean {
    return [...this.instances.values()].some((i) => i.nodeId === nodeId);
  }

  /** Instances by state and serving KV tokens per model (the listed models first; non-stale instances). */
  tallyByModel(models: readonly string[], nowMs: number): Map<string, ModelTally> {
    const eps = new Map<string, ModelTally>();
    const entry = (model: string) => {
      const e = eps.get(model) ?? { instances: {}, used: 0, cap: 0 };
      eps.set(model, e);
      return e;
    };
    for (const m of models) entry(m);
    for (const i of this.instances.values()) {
      if (nowMs - i.atMs > this.staleAfterMs) continue;
      const e = entry(i.model);
      e.instances[i.state] = (e.instances[i.state] ?? 0) + 1;
      if (i.state === "serving") {
        e.used += i.kvUtilization * i.kvCapacityTokens;
        e.cap += i.kvCapacityTokens;
      }
    }
    return eps;
  }

  /** Boots of this endpoint still expected (not yet reported, not yet given up on). */
  pendingBoots(model: string, pool: string | undefined): number {
    let pending = 0;
    if (this.boots.size) {
      const now = this.clock.now();
      for (const b of this.boots.values())
        if (b.model === model && b.pool === pool && b.untilMs > now) pending++;
    }
    return pending;
  }

  addBoot(boot: BootInFlight): void {
    this.boots.set(boot.nodeId, boot);
  }

  /** The node reported: its boot, if it was one of ours, has arrived (true when one was pending). */
  bootArrived(nodeId: string): boolean {
    return this.boots.delete(nodeId);
  }

  /** Forget boots that should long have finished. */
  pruneBoots(nowMs: number): void {
    for (const [id, b] of this.boots) if (b.untilMs <= nowMs) this.boots.delete(id);
  }

  /** Take over the boots a predecessor stored (KV `sage-boots`) that may still arrive. */
  restoreBoots(stored: unknown, nowMs: number): void {
    if (!stored || !Array.isArray((stored as { boots?: unknown }).boots)) return;
    for (const b of (stored as { boots: BootInFlight[] }).boots) {
      if (typeof b?.nodeId === "string" && typeof b.model === "string" && b.untilMs > nowMs)
        this.boots.set(b.nodeId, b);
    }
  }

  bootsInFlight(): BootInFlight[] {
    return [...this.boots.values()];
  }
}
