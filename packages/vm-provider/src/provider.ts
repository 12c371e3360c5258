import { type Payload, SageError, VmCommand } from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";

/**
 * Where VMs come from. A region agent asks for one with a `VmCommand` (boot: GPU type + model;
 * release: a node id); a provider answers with the new node's id. Implementations:
 *  - the simulator's fleet (`@sageserve/sim`, simulated VMs with boot delays and supply limits);
 *  - `LocalProcessBackend` here: a node agent plus an engine emulator process per "VM", on this machine;
 *  - a cloud or Kubernetes provider: implement `VmBackend` (see docs/deploy.md for a worked example).
 */
export interface VmBackend {
  /** Start a VM (or pod) for `model` on `gpuType`; resolves with the node id its agent will report. */
  boot(req: {
    region: string;
    gpuType: string;
    model: string;
    pool?: string;
  }): Promise<{ nodeId: string; etaMs: number }>;
  release(nodeId: string): Promise<void>;
  /** VMs this backend may still start in the region for the GPU type (supply). */
  capacityLeft(region: string, gpuType: string): number;
}

/** The actor that serves `VmCommand`s for one region with a backend. */
export class VmProviderActor extends Actor {
  booted = 0;
  released = 0;

  constructor(
    ctx: ActorContext,
    private readonly region: string,
    private readonly backend: VmBackend,
  ) {
    super(ctx, { role: "vm-provider", id: `vm-provider-${region}`, metadata: { region } });
  }

  protected setup(): void {
    this.handle(VmCommand, { region: this.region }, (c) => this.command(c));
  }

  private async command(c: Payload<typeof VmCommand>) {
    if (c.action === "release") {
      if (!c.nodeId) return new SageError("INVALID_REQUEST", "release needs a nodeId");
      await this.backend.release(c.nodeId);
      this.released++;
      return { commandId: c.commandId, accepted: true, nodeId: c.nodeId };
    }
    if (!c.model) return new SageError("INVALID_REQUEST", "boot needs a model");
    if (this.backend.capacityLeft(this.region, c.gpuType) <= 0) {
      return {
        commandId: c.commandId,
        accepted: false,
        message: `no ${c.gpuType} capacity left in ${this.region}`,
      };
    }
    const vm = await this.backend.boot({
      region: this.region,
      gpuType: c.gpuType,
      model: c.model,
      ...(c.pool ? { pool: c.pool } : {}),
    });
    this.booted++;
    return { commandId: c.commandId, accepted: true, nodeId: vm.nodeId, etaMs: vm.etaMs };
  }
}
