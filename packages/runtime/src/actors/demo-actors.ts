import {
  Heartbeat,
  type InstanceState,
  InstanceTransition,
  LoadReport,
  NodeCommand,
  nodeCommandStep,
} from "@sageserve/protocol";
import { Actor } from "../kernel/actor.js";
import type { ActorContext } from "../kernel/actor-context.js";

/**
 * A small node/region pair that exercises events, request/reply, timers and
 * seeded randomness. It is what `sageserve up` shows today and what the
 * equivalence test replays on NATS and on virtual time: the same code, the same
 * message log. Each actor logs what it sent and saw, without timestamps.
 */
export interface DemoLogEntry {
  actor: string;
  event: string;
  detail: string;
}

export interface DemoOptions {
  region?: string;
  nodeId?: string;
  model?: string;
  heartbeatMs?: number;
  /** Stop heartbeating after this many beats (0 = never). */
  maxBeats?: number;
  /** Where the actor records what it did (an array, or a printer). */
  log: { push(entry: DemoLogEntry): unknown };
}

export class DemoNodeActor extends Actor {
  private seq = 0;
  private state: InstanceState = "serving";
  private model: string;
  private readonly opts: Required<DemoOptions>;
  private readonly rng;

  constructor(ctx: ActorContext, opts: DemoOptions) {
    const o = withDefaults(opts);
    super(ctx, { role: "demo-node", id: `demo-node-${o.nodeId}`, metadata: { region: o.region } });
    this.opts = o;
    this.model = o.model;
    this.rng = ctx.clock.rng(`demo-node-${o.nodeId}`);
  }

  private get instanceId(): string {
    return `${this.opts.nodeId}-i0`;
  }

  protected setup(): void {
    const { region, nodeId } = this.opts;
    this.handle(NodeCommand, { node: nodeId }, (cmd) => {
      this.record("command", `${cmd.action}${cmd.model ? ` ${cmd.model}` : ""}`);
      // The node lifecycle every node follows; a demo node runs nothing, so a drain ends at once and a
      // (re)load is done at once.
      const step = nodeCommandStep({ state: this.state, model: this.model, inFlight: 0 }, cmd);
      if (!step.accepted)
        return { commandId: cmd.commandId, accepted: false, state: this.state, message: step.reason };
      const go = (to: InstanceState) => {
        const from = this.state;
        this.state = to;
        this.publish(
          InstanceTransition,
          { region, instance: this.instanceId },
          {
            instanceId: this.instanceId,
            nodeId,
            region,
            model: this.model,
            from,
            to,
            atMs: this.clock.now(),
          },
        );
      };
      if (cmd.model) this.model = cmd.model;
      go(step.to);
      if (step.settlesIn) go(step.settlesIn);
      else if (step.to === "loading" || step.to === "swapping") go("serving");
      return { commandId: cmd.commandId, accepted: true, state: this.state };
    });
    const beat = this.every(this.opts.heartbeatMs, () => {
      this.seq++;
      const util = Math.round(this.rng.next() * 100) / 100;
      this.record("beat", `seq=${this.seq} state=${this.state} kv=${util}`);
      this.publish(
        Heartbeat,
        { region, node: nodeId },
        {
          nodeId,
          region,
          gpuType: "A100",
          gpus: 8,
          spot: this.state === "spot",
          instances: [{ instanceId: this.instanceId, model: this.model, state: this.state }],
          ttlMs: this.opts.heartbeatMs * 3,
          seq: this.seq,
          atMs: this.clock.now(),
        },
      );
      this.publish(
        LoadReport,
        { region, model: this.model, instance: this.instanceId },
        {
          instanceId: this.instanceId,
          nodeId,
          region,
          model: this.model,
          gpuType: "A100",
          state: this.state,
          kvUtilization: util,
          memoryUtilization: util,
          running: Math.round(util * 32),
          waiting: 0,
          outstandingTokens: Math.round(util * 32 * 600),
          tokensPerSecond: Math.round(util * 4000),
          atMs: this.clock.now(),
        },
      );
      if (this.opts.maxBeats > 0 && this.seq >= this.opts.maxBeats) beat.cancel();
    });
  }

  private record(event: string, detail: string): void {
    this.opts.log.push({ actor: `node ${this.opts.nodeId}`, event, detail });
  }
}

/**
 * Watches heartbeats and load; lends the instance as spot when it is idle
 * (KV < 0.25) and reclaims it when load returns (KV > 0.5) — the reactive
 * hysteresis of the paper, in miniature.
 */
export class DemoRegionActor extends Actor {
  private readonly opts: Required<DemoOptions>;
  private readonly busy = new Set<string>();
  private readonly spot = new Set<string>();
  private commands = 0;

  constructor(ctx: ActorContext, opts: DemoOptions) {
    const o = withDefaults(opts);
    super(ctx, { role: "demo-region", id: `demo-region-${o.region}`, metadata: { region: o.region } });
    this.opts = o;
  }

  protected setup(): void {
    const { region } = this.opts;
    this.on(Heartbeat, { region }, (hb) => {
      this.record("heartbeat", `${hb.nodeId} seq=${hb.seq} spot=${hb.spot}`);
    });
    this.on(InstanceTransition, { region }, (t) => {
      this.record("transition", `${t.instanceId} ${t.from}->${t.to}`);
    });
    this.on(LoadReport, { region }, async (load) => {
      this.record("load", `${load.instanceId} kv=${load.kvUtilization}`);
      const node = load.nodeId;
      if (this.busy.has(node)) return;
      const isSpot = this.spot.has(node);
      const action =
        !isSpot && load.kvUtilization < 0.25
          ? "make-spot"
          : isSpot && load.kvUtilization > 0.5
            ? "reclaim"
            : undefined;
      if (action === undefined) return;
      this.busy.add(node);
      const reply = await this.request(
        NodeCommand,
        { node: load.nodeId },
        { commandId: `c-${++this.commands}`, action, issuedAtMs: this.clock.now() },
        2_000,
      );
      this.busy.delete(node);
      if (reply.ok) {
        if (reply.value.state === "spot") this.spot.add(node);
        else this.spot.delete(node);
        this.record("ack", `${node} ${action} -> ${reply.value.state}`);
      } else this.record("nack", `${node} ${action}: ${reply.error.code}`);
    });
  }

  private record(event: string, detail: string): void {
    this.opts.log.push({ actor: "region", event, detail });
  }
}

function withDefaults(o: DemoOptions): Required<DemoOptions> {
  return {
    region: o.region ?? "demo",
    nodeId: o.nodeId ?? "n1",
    model: o.model ?? "llama-3.1-8b",
    heartbeatMs: o.heartbeatMs ?? 1000,
    maxBeats: o.maxBeats ?? 0,
    log: o.log,
  };
}
