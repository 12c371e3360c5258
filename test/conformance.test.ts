import { isSageError } from "@sageserve/protocol";
import type { Bus, DurableMessage, InboundMessage } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BusHarness, memoryHarness, natsHarness } from "./support/bus-harness.js";

/**
 * One suite, two adapters: real NATS with the wall clock, and the in-memory bus
 * on the virtual clock. Every behaviour actors rely on is asserted identically.
 */
const adapters: [string, () => Promise<BusHarness>][] = [
  ["nats + wall clock", () => natsHarness()],
  ["memory + virtual clock", () => memoryHarness()],
];

function values(msgs: InboundMessage[]): unknown[] {
  return msgs.map((m) => {
    const d = m.data();
    if (!d.ok) throw d.error;
    return d.value;
  });
}

describe.each(adapters)("bus conformance: %s", (_label, make) => {
  let h: BusHarness;
  let n = 0;
  const conn = (): Promise<Bus> => h.connect(`c${n++}`);

  beforeAll(async () => {
    h = await make();
  });
  afterAll(async () => {
    await h.close();
  });

  it("matches `*` on exactly one token and `>` on one or more trailing tokens", async () => {
    const pub = await conn();
    const sub = await conn();
    const got: Record<string, string[]> = { star: [], tail: [], exact: [] };
    sub.subscribe("t1.*.load", (m) => void got.star!.push(m.subject));
    sub.subscribe("t1.>", (m) => void got.tail!.push(m.subject));
    sub.subscribe("t1.a.load", (m) => void got.exact!.push(m.subject));
    await h.settle(50);
    for (const s of ["t1.a.load", "t1.b.load", "t1.a.b.load", "t1", "t1.x", "t2.a.load"])
      pub.publish(s, { s });
    await h.until(() => got.tail!.length >= 4 && got.star!.length >= 2 && got.exact!.length >= 1, 5_000);
    await h.settle(50); // and nothing more arrives
    expect(got.star).toEqual(["t1.a.load", "t1.b.load"]);
    expect(got.tail).toEqual(["t1.a.load", "t1.b.load", "t1.a.b.load", "t1.x"]);
    expect(got.exact).toEqual(["t1.a.load"]);
  });

  it("delivers each message to one member of a queue group and to every plain subscriber", async () => {
    const pub = await conn();
    const [a, b, c] = [await conn(), await conn(), await conn()];
    const count = { a: 0, b: 0, c: 0 };
    a.subscribe("t2.work", () => void count.a++, { queue: "workers" });
    b.subscribe("t2.work", () => void count.b++, { queue: "workers" });
    c.subscribe("t2.work", () => void count.c++);
    await h.settle(50);
    for (let i = 0; i < 300; i++) pub.publish("t2.work", { i });
    await h.until(() => count.a + count.b >= 300 && count.c >= 300, 5_000);
    await h.settle(50); // and no queue member gets a second copy
    expect(count.a + count.b).toBe(300);
    expect(count.a).toBeGreaterThan(0);
    expect(count.b).toBeGreaterThan(0);
    expect(count.c).toBe(300);
  });

  it("answers a request with the responder's payload, decoded intact", async () => {
    const client = await conn();
    const server = await conn();
    server.subscribe("t3.echo", (m) => {
      const d = m.data();
      m.respond({ echoed: d.ok ? d.value : null, by: "server" });
    });
    await h.settle(50);
    const payload = { a: 1, b: [1.5, "x", true, null], nested: { deep: { s: "ünïcödé" } }, big: 2 ** 40 };
    const p = client.request("t3.echo", payload, { timeoutMs: 1000 });
    await h.settle(100);
    const reply = await p;
    expect(values([reply])[0]).toEqual({ echoed: payload, by: "server" });
  });

  it("times a request out after its timeout when the responder stays silent", async () => {
    const client = await conn();
    const silent = await conn();
    silent.subscribe("t4.silent", () => {});
    await h.settle(50);
    const started = h.clock.now();
    let settledAt = 0;
    const p = client.request("t4.silent", { q: 1 }, { timeoutMs: 200 }).then(
      () => "replied",
      (e: unknown) => {
        settledAt = h.clock.now();
        return isSageError(e) ? e.code : "untyped";
      },
    );
    await h.settle(100);
    expect(settledAt).toBe(0); // not before the timeout
    await h.settle(250);
    expect(await p).toBe("TIMEOUT");
    expect(settledAt - started).toBeGreaterThanOrEqual(199);
    expect(settledAt - started).toBeLessThan(400);
  });

  it("fails a request with NO_RESPONDERS when nobody listens", async () => {
    const client = await conn();
    const p = client.request("t5.nobody", { q: 1 }, { timeoutMs: 1000 }).then(
      () => "replied",
      (e: unknown) => (isSageError(e) ? e.code : "untyped"),
    );
    await h.settle(100);
    expect(await p).toBe("NO_RESPONDERS");
  });

  it("keeps the publish order of one publisher on one subject", async () => {
    const pub = await conn();
    const sub = await conn();
    const seen: number[] = [];
    sub.subscribe("t6.seq", (m) => {
      const d = m.data();
      if (d.ok) seen.push((d.value as { i: number }).i);
    });
    await h.settle(50);
    for (let i = 0; i < 2000; i++) pub.publish("t6.seq", { i });
    await h.until(() => seen.length >= 2000, 10_000);
    expect(seen).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  });

  it("stops delivering after unsubscribe", async () => {
    const pub = await conn();
    const sub = await conn();
    let got = 0;
    const s = sub.subscribe("t7.x", () => void got++);
    await h.settle(50);
    pub.publish("t7.x", {});
    await h.until(() => got === 1, 5_000);
    s.unsubscribe();
    await h.settle(50);
    pub.publish("t7.x", {});
    await h.settle(100);
    expect(got).toBe(1);
    expect(s.received).toBe(1);
  });

  it("hands garbage bytes to the handler as a DECODE error value, never a throw", async () => {
    const pub = await conn();
    const sub = await conn();
    const codes: string[] = [];
    sub.subscribe("t8.raw", (m) => {
      const d = m.data();
      codes.push(d.ok ? "ok" : d.error.code);
    });
    await h.settle(50);
    pub.publishRaw("t8.raw", new Uint8Array([0xd9, 0x10, 0x41])); // str8 of 16 bytes with 1 present
    pub.publishRaw("t8.raw", new Uint8Array([0x92, 0x01])); // truncated array
    pub.publishRaw("t8.raw", new Uint8Array(0));
    pub.publish("t8.raw", { fine: true });
    await h.until(() => codes.length >= 4, 5_000);
    expect(codes).toEqual(["DECODE", "DECODE", "DECODE", "ok"]);
  });

  it("fires a timer no earlier than its delay and `every` once per interval", async () => {
    const t0 = h.clock.now();
    let timerAt = 0;
    const ticks: number[] = [];
    h.clock.setTimer(150, () => {
      timerAt = h.clock.now();
    });
    const every = h.clock.every(100, () => ticks.push(h.clock.now() - t0));
    await h.until(() => timerAt > 0 && ticks.length >= 5, 5_000);
    every.cancel();
    // Never early is the contract; lateness is bounded loosely (a loaded CI machine delays real
    // timers by tens of milliseconds) — it catches a timer that waits a whole extra interval or more.
    expect(timerAt - t0).toBeGreaterThanOrEqual(149);
    expect(timerAt - t0).toBeLessThan(150 + 400);
    expect(ticks.length).toBeGreaterThanOrEqual(5);
    ticks.slice(0, 5).forEach((t, i) => {
      expect(t).toBeGreaterThanOrEqual((i + 1) * 100 - 1);
      expect(t).toBeLessThan((i + 1) * 100 + 400);
    });
  });

  it("fires a seconds cron schedule on whole seconds", async () => {
    const fired: { scheduled: number; at: number }[] = [];
    const t = h.clock.schedule("* * * * * *", (scheduled) => fired.push({ scheduled, at: h.clock.now() }));
    await h.settle(2300);
    t.cancel();
    expect(fired.length).toBeGreaterThanOrEqual(2);
    expect(fired.length).toBeLessThanOrEqual(3);
    for (const f of fired) {
      expect(f.scheduled % 1000).toBe(0);
      expect(f.at - f.scheduled).toBeGreaterThanOrEqual(0);
      expect(f.at - f.scheduled).toBeLessThan(400); // late by a loaded machine, never a second late
    }
  });

  it("rejects an invalid cron expression with a typed CONFIG error", () => {
    expect(() => h.clock.schedule("every tuesday", () => {})).toThrowError(
      expect.objectContaining({ code: "CONFIG" }),
    );
  });

  it("gives the same random sequence for the same seed and stream", () => {
    const a = h.clock.rng("s");
    const b = h.clock.rng("s");
    const xs = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(xs);
    expect(h.clock.rng("other").next()).not.toBe(xs[0]);
  });

  it("stores and reads back key-value state; a missing key is undefined", async () => {
    const a = await conn();
    const b = await conn();
    const put = a.kvPut("conformance", "plan/latest", {
      planId: "p-1",
      targets: [1, 2, 3],
      name: "llama-3.1-8b",
    });
    await h.settle(100);
    await put;
    const got = b.kvGet("conformance", "plan/latest");
    const missing = b.kvGet("conformance", "nothing-here");
    await h.settle(100);
    expect(await got).toEqual({ planId: "p-1", targets: [1, 2, 3], name: "llama-3.1-8b" });
    expect(await missing).toBeUndefined();
  });

  it("lists every entry of a bucket, keys as written, and an absent bucket as empty without creating it", async () => {
    const a = await conn();
    const writes = Promise.all([
      a.kvPut("conformance-list", "westus", { n: 1 }),
      a.kvPut("conformance-list", "llama 3.1/8b", { n: 2 }),
    ]);
    await h.settle(100);
    await writes;
    const all = a.kvEntries("conformance-list");
    const none = a.kvEntries("conformance-absent");
    await h.settle(200);
    expect([...(await all)]).toEqual([
      ["llama 3.1/8b", { n: 2 }],
      ["westus", { n: 1 }],
    ]);
    expect((await none).size).toBe(0);
    // Had the read created the bucket, a writer's TTL would be lost: it must still be absent.
    const again = a.kvEntries("conformance-absent");
    await h.settle(100);
    expect((await again).size).toBe(0);
  });

  it("updates a key as one compare-and-set: concurrent writers from two connections lose no change", async () => {
    const a = await conn();
    const b = await conn();
    // 20 increments at once, half from each connection: a read-then-write would lose most of them.
    const bump = (bus: Bus) =>
      bus.kvUpdate("conformance-cas", "counter", (v) => ({
        n: ((v as { n?: number } | undefined)?.n ?? 0) + 1,
      }));
    const all = Promise.all(Array.from({ length: 20 }, (_, i) => bump(i % 2 ? a : b)));
    await h.settle(500);
    const stored = (await all).map((v) => (v as { n: number }).n);
    // Each call saw its own revision: every count from 1 to 20 stored exactly once.
    expect(stored.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    // `undefined` from the change leaves the key as it is and resolves with what is stored.
    const left = a.kvUpdate("conformance-cas", "counter", () => undefined);
    const absent = a.kvUpdate("conformance-cas", "nothing", () => undefined);
    await h.settle(100);
    expect(await left).toEqual({ n: 20 });
    expect(await absent).toBeUndefined();
    const read = b.kvGet("conformance-cas", "counter");
    await h.settle(50);
    expect(await read).toEqual({ n: 20 });
  });

  it("creates a new bucket from two connections at once: both writes land (the slower create binds to the other's)", async () => {
    const [a, b] = [await conn(), await conn()];
    const writes = Array.from({ length: 8 }, (_, i) => [
      a.kvPut(`conformance-race-${n}-${i}`, "from-a", { i }),
      b.kvPut(`conformance-race-${n}-${i}`, "from-b", { i }),
    ]).flat();
    await h.settle(200);
    await Promise.all(writes);
    const reads = Array.from({ length: 8 }, (_, i) =>
      Promise.all([
        a.kvGet(`conformance-race-${n}-${i}`, "from-b"),
        b.kvGet(`conformance-race-${n}-${i}`, "from-a"),
      ]),
    );
    await h.settle(100);
    expect(await Promise.all(reads)).toEqual(Array.from({ length: 8 }, (_, i) => [{ i }, { i }]));
  });

  it("expires key-value entries of a bucket with a TTL when they are not refreshed", async () => {
    const a = await conn();
    const put = a.kvPut("conformance-ttl", "node-1", { alive: true }, { bucketTtlMs: 1_000 });
    await h.settle(50);
    await put;
    const fresh = a.kvGet("conformance-ttl", "node-1");
    await h.settle(50);
    expect(await fresh).toEqual({ alive: true });
    await h.settle(1_600);
    const stale = a.kvGet("conformance-ttl", "node-1");
    await h.settle(50);
    expect(await stale).toBeUndefined();
  });

  it("keeps durable queue messages until acknowledged, and redelivers unacknowledged ones to a restarted consumer", async () => {
    const stream = { name: `CONF_${n}`, subjects: [`tq${n}.>`] };
    const prefix = `tq${n}`;
    const producer = await conn();
    for (const i of [1, 2, 3])
      await Promise.all([producer.durablePublish(stream, `${prefix}.a.x`, { i }), h.settle(20)]);
    const first = await conn();
    const seen: number[] = [];
    const sub1 = first.durableConsume(
      stream,
      "worker",
      `${prefix}.a.>`,
      (m) => {
        const d = m.data();
        const i = d.ok ? (d.value as { i: number }).i : -1;
        seen.push(i);
        if (i !== 2) m.ack(); // message 2 is held, never acknowledged
      },
      { ackWaitMs: 1_000 },
    );
    await h.until(() => seen.length >= 3, 5_000);
    expect(seen).toEqual([1, 2, 3]);
    (await sub1).unsubscribe();
    await first.close();
    // The consumer restarts: only the unacknowledged message comes back.
    const second = await conn();
    const again: number[] = [];
    const sub2 = second.durableConsume(
      stream,
      "worker",
      `${prefix}.a.>`,
      (m) => {
        const d = m.data();
        again.push(d.ok ? (d.value as { i: number }).i : -1);
        m.ack();
      },
      { ackWaitMs: 1_000 },
    );
    await h.settle(1_800);
    expect(again).toEqual([2]);
    (await sub2).unsubscribe();
  });

  it("redelivers a held message after its ack wait exactly when durableRedelivery says so, unless working() is called", async () => {
    const stream = { name: `CONFW_${n}`, subjects: [`tw${n}.>`] };
    const prefix = `tw${n}`;
    const producer = await conn();
    await Promise.all([producer.durablePublish(stream, `${prefix}.idle.x`, { i: 1 }), h.settle(20)]);
    await Promise.all([producer.durablePublish(stream, `${prefix}.kept.x`, { i: 2 }), h.settle(20)]);
    const holder = await conn();
    const idle: DurableMessage[] = [];
    const kept: DurableMessage[] = [];
    const hold = (name: string, into: DurableMessage[]) =>
      holder.durableConsume(stream, name, `${prefix}.${name}.>`, (m) => void into.push(m), {
        ackWaitMs: 1_000,
      });
    const subIdle = await hold("idle", idle);
    const subKept = await hold("kept", kept);
    await h.until(() => idle.length >= 1 && kept.length >= 1, 5_000);
    // Hold both, never acknowledged, for 2.5 ack waits; keep one alive.
    for (let t = 0; t < 8; t++) {
      kept[0]!.working();
      await h.settle(300);
    }
    expect(idle.length > 1).toBe(holder.durableRedelivery);
    expect(kept).toHaveLength(1);
    for (const m of [...idle, ...kept]) m.ack();
    subIdle.unsubscribe();
    subKept.unsubscribe();
  });

  it("registers services that discovery lists with their endpoints", async () => {
    const b = await conn();
    const svc = await b.registerService({
      name: "conformance-svc",
      version: "1.2.3",
      description: "test service",
      instanceId: "conf-1",
      metadata: { region: "westus" },
    });
    svc.addEndpoint("ping", "t9.ping", (m) => void m.respond({ pong: true }));
    await h.settle(50);
    const client = await conn();
    const found = client.discover({ name: "conformance-svc", timeoutMs: 300 });
    await h.settle(400);
    const infos = await found;
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({
      name: "conformance-svc",
      version: "1.2.3",
      metadata: { region: "westus" },
    });
    expect(infos[0]!.endpoints).toEqual([expect.objectContaining({ name: "ping", subject: "t9.ping" })]);
    const p = client.request("t9.ping", {}, { timeoutMs: 500 });
    await h.settle(100);
    expect(values([await p])).toEqual([{ pong: true }]);
    await svc.stop();
  });
});
