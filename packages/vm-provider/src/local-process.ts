import { NodeAgentActor } from "@sageserve/node-agent";
import { type Bus, type Clock, createLogger, freePort, type Logger } from "@sageserve/runtime";
import type { VmBackend } from "./provider.js";

/**
 * "VMs" on this machine, for the laptop cluster and tests: each boot starts a node agent that runs an
 * engine process (by default the engine emulator) on a free port. Release stops both.
 */
export interface LocalProcessOptions {
  /** A NATS connection per node agent. */
  connect(name: string): Promise<Bus>;
  clock: Clock;
  /** argv of the engine; `{model}` and `{port}` are substituted. */
  engineCommand: string[];
  /** Most "VMs" per region and GPU type (default 8). */
  maxVms?: number;
  log?: Logger;
  loadReportMs?: number;
  heartbeatMs?: number;
  /** KV-cache capacity the engines are started with (reported with the load). */
  kvCapacityTokens?: number;
  /** Most sequences the engines run at once (their --max-num-seqs; reported with the load). */
  maxRunning?: number;
  /** The node agents send each request's tier as the engine's priority (engines started with priority scheduling). */
  enginePriority?: boolean;
  /**
   * How long a "VM" boots before its node agent starts (default 0): a cloud VM takes minutes, during
   * which nothing reports from it — only the boot command's answer says it is coming.
   */
  bootDelayMs?: number;
}

export class LocalProcessBackend implements VmBackend {
  private readonly nodes = new Map<
    string,
    { agent: NodeAgentActor; bus: Bus; region: string; gpuType: string }
  >();
  /** VMs still booting (bootDelayMs): their node agents have not started yet. */
  private readonly booting = new Map<string, { region: string; gpuType: string; cancel(): void }>();
  private seq = 0;

  constructor(private readonly o: LocalProcessOptions) {}

  capacityLeft(region: string, gpuType: string): number {
    let used = 0;
    for (const n of [...this.nodes.values(), ...this.booting.values()])
      if (n.region === region && n.gpuType === gpuType) used++;
    return (this.o.maxVms ?? 8) - used;
  }

  async boot(req: {
    region: string;
    gpuType: string;
    model: string;
    pool?: string;
  }): Promise<{ nodeId: string; etaMs: number }> {
    const nodeId = `${req.region}-local-${this.seq++}`;
    const delay = this.o.bootDelayMs ?? 0;
    if (delay > 0) {
      const timer = this.o.clock.setTimer(delay, () => {
        this.booting.delete(nodeId);
        this.start(nodeId, req).catch((e) =>
          this.o.log?.error({ nodeId, err: String(e) }, "VM failed to start its node agent"),
        );
      });
      this.booting.set(nodeId, { region: req.region, gpuType: req.gpuType, cancel: () => timer.cancel() });
      return { nodeId, etaMs: delay + 2_000 };
    }
    await this.start(nodeId, req);
    return { nodeId, etaMs: 2_000 };
  }

  private async start(
    nodeId: string,
    req: { region: string; gpuType: string; model: string; pool?: string },
  ): Promise<void> {
    const port = await freePort();
    const bus = await this.o.connect(`node-agent-${nodeId}`);
    const agent = new NodeAgentActor(
      { bus, clock: this.o.clock, log: this.o.log ?? createLogger({ name: nodeId, level: "warn" }) },
      {
        nodeId,
        region: req.region,
        gpuType: req.gpuType,
        engine: {
          url: `http://127.0.0.1:${port}`,
          kind: "vllm",
          model: req.model,
          command: this.o.engineCommand,
          ...(req.pool ? { pool: req.pool } : {}),
          ...(this.o.kvCapacityTokens ? { kvCapacityTokens: this.o.kvCapacityTokens } : {}),
          ...(this.o.maxRunning ? { maxRunning: this.o.maxRunning } : {}),
          ...(this.o.enginePriority ? { priority: true } : {}),
        },
        loadReportMs: this.o.loadReportMs ?? 1_000,
        ...(this.o.heartbeatMs ? { heartbeatMs: this.o.heartbeatMs } : {}),
        drainTimeoutMs: 5_000,
      },
    );
    await agent.start();
    this.nodes.set(nodeId, { agent, bus, region: req.region, gpuType: req.gpuType });
  }

  async release(nodeId: string): Promise<void> {
    const b = this.booting.get(nodeId);
    if (b) {
      b.cancel();
      this.booting.delete(nodeId);
      return;
    }
    const n = this.nodes.get(nodeId);
    if (!n) return;
    this.nodes.delete(nodeId);
    await n.agent.stop();
    await n.bus.close();
  }

  /** Stop every node (shutdown). */
  async releaseAll(): Promise<void> {
    for (const id of [...this.booting.keys(), ...this.nodes.keys()]) await this.release(id);
  }

  get size(): number {
    return this.nodes.size;
  }
}
