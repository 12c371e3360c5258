import { encode, envelope, LoadReport, NodeCommand, SageError, validateReply } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import { Actor } from "./actor.js";
import type { ActorContext } from "./actor-context.js";
import { MemoryBroker } from "./memory-broker.js";
import { VirtualClock } from "./virtual-clock.js";

class Commandable extends Actor {
  loads: number[] = [];
  constructor(ctx: ActorContext) {
    super(ctx, { role: "test-node", id: "t1" });
  }
  protected setup(): void {
    this.on(LoadReport, { region: "r1" }, (l) => {
      if (l.running === 13) throw new Error("unlucky");
      this.loads.push(l.running);
    });
    this.handle(NodeCommand, { node: "t1" }, async (cmd) => {
      await this.clock.sleep(10);
      if (cmd.action === "unload") return new SageError("INVALID_REQUEST", "nothing loaded");
      return { commandId: cmd.commandId, accepted: true };
    });
  }
  send(payload: object) {
    return this.publish(LoadReport, { region: "r1", model: "m", instance: "i" }, payload as never);
  }
}

async function world() {
  const clock = new VirtualClock();
  const broker = new MemoryBroker(clock);
  const actor = new Commandable({ bus: broker.connect("actor"), clock });
  await actor.start();
  return { clock, broker, actor, client: broker.connect("client") };
}

describe("Actor boundary", () => {
  it("answers a request after awaiting virtual time, and sends handler SageErrors as typed error replies", async () => {
    const { clock, client } = await world();
    const subject = NodeCommand.subject.build({ node: "t1" });
    const good = client.request(
      subject,
      envelope(NodeCommand, { commandId: "c1", action: "drain", issuedAtMs: 0 }),
      { timeoutMs: 100 },
    );
    const bad = client.request(
      subject,
      envelope(NodeCommand, { commandId: "c2", action: "unload", issuedAtMs: 0 }),
      { timeoutMs: 100 },
    );
    await clock.advance(50);
    const g = (await good).data();
    expect(g.ok && validateReply(NodeCommand, g.value)).toMatchObject({
      ok: true,
      value: { commandId: "c1", accepted: true },
    });
    const b = (await bad).data();
    const r = b.ok ? validateReply(NodeCommand, b.value) : b;
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.details).toEqual({ code: "INVALID_REQUEST", message: "nothing loaded" });
  });

  it("counts schema rejects and handler failures without delivering them or dying", async () => {
    const { clock, client, actor } = await world();
    const subject = LoadReport.subject.build({ region: "r1", model: "m", instance: "i" });
    client.publish(subject, envelope(LoadReport, { ...LoadReport.sample(), running: 1 }));
    client.publish(subject, { ...envelope(LoadReport, LoadReport.sample()), kvUtilization: "high" });
    client.publishRaw(subject, encode([1, 2, 3]).subarray(0, 2));
    client.publish(subject, envelope(LoadReport, { ...LoadReport.sample(), running: 13 }));
    client.publish(subject, envelope(LoadReport, { ...LoadReport.sample(), running: 2 }));
    await clock.advance(10);
    expect(actor.loads).toEqual([1, 2]);
    const s = actor.stats();
    expect(s.rejectedByCode).toEqual({ SCHEMA: 1, DECODE: 1 });
    expect(s.handlerErrors).toBe(1);
    expect(s.handled).toBe(2);
    expect(actor.isRunning).toBe(true);
  });

  it("refuses to publish an invalid payload, returning the error instead of sending it", async () => {
    const { actor } = await world();
    const r = actor.send({ ...LoadReport.sample(), kvUtilization: 3 });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe("SCHEMA");
    expect(actor.stats().publishFailures).toBe(1);
  });

  it("stops cleanly: no more deliveries, timers cancelled, service gone", async () => {
    const { clock, client, actor, broker } = await world();
    expect(broker.services.has("t1")).toBe(true);
    await actor.stop();
    client.publish(
      LoadReport.subject.build({ region: "r1", model: "m", instance: "i" }),
      envelope(LoadReport, LoadReport.sample()),
    );
    await clock.advance(10);
    expect(actor.loads).toEqual([]);
    expect(broker.services.has("t1")).toBe(false);
  });
});
