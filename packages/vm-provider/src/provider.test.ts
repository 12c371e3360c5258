import { envelope, type PayloadIn, VmCommand, validateReply } from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { LocalProcessBackend } from "./local-process.js";
import { type VmBackend, VmProviderActor } from "./provider.js";

/** A backend that records what it was asked (the provider actor's contract, not a cloud). */
class RecordingBackend implements VmBackend {
  readonly boots: { region: string; gpuType: string; model: string; pool?: string }[] = [];
  readonly releases: string[] = [];
  constructor(private left: number) {}
  async boot(req: { region: string; gpuType: string; model: string; pool?: string }) {
    this.boots.push(req);
    this.left--;
    return { nodeId: `n${this.boots.length}`, etaMs: 90_000 };
  }
  async release(nodeId: string) {
    this.releases.push(nodeId);
  }
  capacityLeft() {
    return this.left;
  }
}

async function provider(backend: VmBackend) {
  const clock = new VirtualClock();
  const broker = new MemoryBroker(clock);
  const actor = new VmProviderActor({ bus: broker.connect("provider"), clock }, "westus", backend);
  await actor.start();
  const bus = broker.connect("agent");
  let n = 0;
  const send = async (c: Partial<PayloadIn<typeof VmCommand>>) => {
    const subject = VmCommand.subject.build({ region: "westus" });
    const p = bus.request(
      subject,
      envelope(VmCommand, {
        commandId: `c${n++}`,
        action: "boot",
        gpuType: "h100",
        issuedAtMs: clock.now(),
        ...c,
      }),
      { timeoutMs: 1_000 },
    );
    await clock.advance(10);
    const data = (await p).data();
    return data.ok ? validateReply(VmCommand, data.value, subject) : data;
  };
  return { actor, send, clock };
}

describe("VmProviderActor", () => {
  it("boots through its backend (model, GPU type, pool), answers the node id and ETA, and counts", async () => {
    const backend = new RecordingBackend(2);
    const { actor, send } = await provider(backend);
    const r = await send({ model: "llama3.2-3b", pool: "p1" });
    expect(r).toMatchObject({
      ok: true,
      value: { commandId: "c0", accepted: true, nodeId: "n1", etaMs: 90_000 },
    });
    expect(backend.boots).toEqual([{ region: "westus", gpuType: "h100", model: "llama3.2-3b", pool: "p1" }]);
    expect(actor.booted).toBe(1);
  });

  it("declines a boot when the backend has no supply left, with a reason, and boots nothing", async () => {
    const backend = new RecordingBackend(0);
    const { actor, send } = await provider(backend);
    const r = await send({ model: "llama3.2-3b" });
    expect(r.ok && r.value.accepted).toBe(false);
    expect(r.ok && r.value.message).toBe("no h100 capacity left in westus");
    expect(backend.boots).toEqual([]);
    expect(actor.booted).toBe(0);
  });

  it("releases a node; answers typed errors for a boot without a model and a release without a node", async () => {
    const backend = new RecordingBackend(1);
    const { actor, send } = await provider(backend);
    expect(await send({ action: "release", nodeId: "n7" })).toMatchObject({
      ok: true,
      value: { accepted: true },
    });
    expect(backend.releases).toEqual(["n7"]);
    expect(actor.released).toBe(1);
    const noModel = await send({});
    expect(noModel.ok).toBe(false);
    expect(!noModel.ok && noModel.error.message).toMatch(/boot needs a model/);
    const noNode = await send({ action: "release" });
    expect(!noNode.ok && noNode.error.message).toMatch(/release needs a nodeId/);
  });
});

describe("LocalProcessBackend supply while VMs boot", () => {
  it("counts a booting VM against the supply; releasing it before it is up cancels it (nothing starts)", async () => {
    const clock = new VirtualClock();
    let connects = 0;
    const backend = new LocalProcessBackend({
      connect: async () => {
        connects++;
        throw new Error("no node agent may start in this test");
      },
      clock,
      engineCommand: ["false"],
      maxVms: 2,
      bootDelayMs: 60_000,
    });
    const a = await backend.boot({ region: "westus", gpuType: "h100", model: "m" });
    expect(a.etaMs).toBe(62_000);
    expect(backend.capacityLeft("westus", "h100")).toBe(1);
    expect(backend.capacityLeft("westus", "a100")).toBe(2); // per GPU type
    expect(backend.capacityLeft("eastus", "h100")).toBe(2); // per region
    await backend.release(a.nodeId);
    expect(backend.capacityLeft("westus", "h100")).toBe(2);
    await clock.advance(120_000);
    expect(connects).toBe(0); // the cancelled boot never started its node agent
    expect(backend.size).toBe(0);
  });
});
