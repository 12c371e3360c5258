/**
 * Scaling actuation: carries out the region agent's scale decisions as commands — scale-up reclaims a spot
 * VM of the same model, else swaps a spot VM of another model (warm migration), else boots a VM; scale-down
 * lends the least loaded instance to the spot pool; stopped or failed VMs go back to the provider — and
 * keeps the cool-downs that follow each. Separate from the actor: the decisions are made elsewhere
 * (policy.ts, plan-policy.ts); this is the mechanism, talking to nodes and the VM provider through ports.
 */
import {
  type NodeCommand,
  type PayloadIn,
  pairKey,
  type ReplyOf,
  type Result,
  type VmCommand,
} from "@sageserve/protocol";
import type { Clock, Logger } from "@sageserve/runtime";
import type { ActionCounts } from "./actions.js";
import type { InstanceInfo, InstanceView } from "./instance-view.js";

/** Cool-downs after each kind of scale-up: the time the new capacity takes to arrive. */
export interface Cooldowns {
  reclaimMs: number;
  swapMs: number;
  bootMs: number;
}

export interface ScalingSettings {
  region: string;
  /** GPU types to boot new VMs with, in preference order. */
  gpuTypes: readonly string[];
  cooldowns: Cooldowns;
  scaleDownCooldownMs: number;
  /** Prefix of command ids (the actor's id). */
  idPrefix: string;
}

/** The commands the actuator sends (a request each, answered), and how it stores the boots it expects. */
export interface ScalingPorts {
  nodeCommand(node: string, cmd: PayloadIn<typeof NodeCommand>): Promise<Result<ReplyOf<typeof NodeCommand>>>;
  vmCommand(cmd: PayloadIn<typeof VmCommand>): Promise<Result<ReplyOf<typeof VmCommand>>>;
  saveBoots(): Promise<void>;
}

export class ScalingActuator {
  private readonly cooldownUntil = new Map<string, number>();
  /** VMs given back to the provider (stopped by a drain, or failed): each is released once. */
  private readonly releasedNodes = new Set<string>();
  private commandSeq = 0;
  /** Distinguishes this run's command ids from a predecessor's (a restarted agent starts its count again). */
  private runTag = "";

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly view: InstanceView,
    private readonly settings: ScalingSettings,
    private readonly actions: ActionCounts,
    private readonly ports: ScalingPorts,
  ) {}

  /** A new run of the agent begins (tags its command ids). */
  startRun(): void {
    this.runTag = this.clock.now().toString(36);
  }

  /** When endpoint `ek` ("model|pool") may scale again (0: no cool-down). */
  cooldownUntilMs(ek: string): number {
    return this.cooldownUntil.get(ek) ?? 0;
  }

  /**
   * `gpu`: the plan's GPU type to boot first; `batch`: one of several actions this tick (no cool-down
   * gate); `strictGpu`: only that GPU type will do (a GPU-type migration: a spot VM or a boot of another
   * type would undo it).
   */
  scaleUp(
    model: string,
    pool: string | undefined,
    gpu?: string,
    batch = false,
    strictGpu = false,
  ): Promise<void> {
    const now = this.clock.now();
    const spot = this.view.spotVms(now, gpu, strictGpu);
    const own = spot.find((i) => i.model === model);
    const other = own ? undefined : spot.sort((a, b) => a.instanceId.localeCompare(b.instanceId))[0];
    const target = own ?? other;
    if (target) return this.takeSpot(target, own !== undefined, model, pool, batch, now);
    return this.boot(model, pool, gpu, batch, strictGpu, now);
  }

  /** Reclaim a spot VM of the model (`own`), or swap one of another model to it (warm migration). */
  private async takeSpot(
    target: InstanceInfo,
    own: boolean,
    model: string,
    pool: string | undefined,
    batch: boolean,
    now: number,
  ): Promise<void> {
    const action = own ? "reclaim" : "swap";
    if (!batch)
      this.setCooldown(model, pool, own ? this.settings.cooldowns.reclaimMs : this.settings.cooldowns.swapMs);
    target.state = own ? "loading" : "swapping";
    this.view.move(target, model, pool);
    target.atMs = now;
    const reply = await this.ports.nodeCommand(target.nodeId, {
      commandId: this.nextCommandId(),
      action,
      model,
      instanceId: target.instanceId,
      ...(pool ? { pool } : {}),
      issuedAtMs: now,
    });
    if (reply.ok && reply.value.accepted) {
      if (own) this.actions.reclaim++;
      else this.actions.swap++;
    }
  }

  /** Boot a VM: the plan's GPU type first (only it, with `strictGpu`), else the configured types in order. */
  private async boot(
    model: string,
    pool: string | undefined,
    gpu: string | undefined,
    batch: boolean,
    strictGpu: boolean,
    now: number,
  ): Promise<void> {
    const { gpuTypes, cooldowns } = this.settings;
    if (!batch) this.setCooldown(model, pool, cooldowns.bootMs);
    const order = gpu ? (strictGpu ? [gpu] : [gpu, ...gpuTypes.filter((g) => g !== gpu)]) : gpuTypes;
    for (const gpuType of order) {
      const reply = await this.ports.vmCommand({
        commandId: this.nextCommandId(),
        action: "boot",
        gpuType,
        model,
        ...(pool ? { pool } : {}),
        issuedAtMs: now,
      });
      if (reply.ok && reply.value.accepted) {
        this.actions.boot++;
        const saving = this.expectBoot(reply.value, model, gpuType, pool);
        if (saving) await saving;
        return;
      }
    }
    this.actions.bootRefused++;
  }

  /**
   * Arriving capacity until the node reports, or until a boot should long have finished (unless the node
   * has reported already). Returns the store of the boots when one was added.
   */
  private expectBoot(
    reply: { nodeId?: string | undefined; etaMs?: number | undefined },
    model: string,
    gpuType: string,
    pool: string | undefined,
  ): Promise<void> | undefined {
    const nodeId = reply.nodeId;
    const heard = nodeId !== undefined && this.view.heardFromNode(nodeId);
    if (nodeId === undefined || heard) return undefined;
    this.view.addBoot({
      nodeId,
      model,
      gpuType,
      ...(pool ? { pool } : {}),
      untilMs: this.clock.now() + Math.max(this.settings.cooldowns.bootMs, 2 * (reply.etaMs ?? 0)),
    });
    return this.ports.saveBoots();
  }

  /**
   * Lend the endpoint's least loaded serving instance to the spot pool. Under a plan, GPU types above their
   * planned count (`surplusGpus`) go first (this is how a migration completes).
   */
  async scaleDown(
    model: string,
    pool: string | undefined,
    surplusGpus: ReadonlySet<string>,
    batch = false,
  ): Promise<void> {
    const serving = this.view
      .endpoint(model, pool)
      .filter((i) => i.state === "serving")
      .sort(
        (a, b) =>
          Number(surplusGpus.has(b.gpuType)) - Number(surplusGpus.has(a.gpuType)) ||
          a.load - b.load ||
          a.instanceId.localeCompare(b.instanceId),
      );
    const victim = serving[0];
    if (!victim) return;
    if (!batch) this.setCooldown(model, pool, this.settings.scaleDownCooldownMs);
    victim.state = "draining";
    victim.atMs = this.clock.now();
    const reply = await this.ports.nodeCommand(victim.nodeId, {
      commandId: this.nextCommandId(),
      action: "make-spot",
      instanceId: victim.instanceId,
      issuedAtMs: this.clock.now(),
    });
    if (reply.ok && reply.value.accepted) this.actions.makeSpot++;
  }

  /** Give every stopped (drained) or failed VM that reported recently back to the provider, once. */
  releaseStopped(nowMs: number, work: Promise<void>[]): void {
    for (const i of this.view.instances.values()) {
      if ((i.state === "stopped" || i.state === "failed") && nowMs - i.atMs <= this.view.staleAfterMs) {
        if (!this.releasedNodes.has(i.nodeId)) work.push(this.release(i.nodeId, i.gpuType));
      }
    }
  }

  /** Give a stopped (drained) or failed VM back to the provider; the endpoint's scaling replaces it. */
  private async release(nodeId: string, gpuType: string): Promise<void> {
    this.releasedNodes.add(nodeId);
    const reply = await this.ports.vmCommand({
      commandId: this.nextCommandId(),
      action: "release",
      gpuType,
      nodeId,
      issuedAtMs: this.clock.now(),
    });
    if (reply.ok && reply.value.accepted) this.actions.released++;
    else this.log.warn({ nodeId, reply }, "VM release refused or failed");
  }

  private setCooldown(model: string, pool: string | undefined, ms: number): void {
    this.cooldownUntil.set(pairKey(model, pool ?? ""), this.clock.now() + ms);
  }

  private nextCommandId(): string {
    return `${this.settings.idPrefix}-${this.runTag}-c${this.commandSeq++}`;
  }
}
