import { NatsBus } from "@sageserve/nats";
import { decode, envelope, MESSAGES, type MessageDef, NodeCommand, validateReply } from "@sageserve/protocol";
import {
  Actor,
  type ActorContext,
  BusAuditor,
  type DemoLogEntry,
  DemoNodeActor,
  DemoRegionActor,
  memoryLogger,
  WallClock,
} from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { garbagePayloads, structuredGarbage } from "./support/garbage.js";
import { type NatsFixture, startNats } from "./support/nats.js";

/** Listens on every declared subject; answers every request type with its valid sample reply. */
class EveryoneActor extends Actor {
  valid = 0;
  readonly validByName = new Map<string, number>();
  constructor(ctx: ActorContext) {
    super(ctx, { role: "fuzz-target", id: "fuzz-target" });
  }
  protected setup(): void {
    for (const def of MESSAGES) {
      if (def.reply) {
        // The demo node answers its own commands; this actor takes node n2's.
        this.handle(
          def,
          def === NodeCommand ? { node: "n2" } : {},
          () => {
            this.count(def);
            return (def.replySample as () => never)();
          },
          { broadcast: true },
        );
      } else {
        this.on(def, {}, () => this.count(def), { broadcast: true });
      }
    }
  }
  private count(def: MessageDef): void {
    this.valid++;
    this.validByName.set(def.name, (this.validByName.get(def.name) ?? 0) + 1);
  }
}

// Half classic garbage, half structured mutations (bigint versions, ±Infinity, 10k-deep nesting,
// extension types, __proto__ keys…: test/support/fuzz.ts), all over the real server.
const PER_SUBJECT = 2000;
const AS_REQUESTS = 100;
const params = {
  region: "demo",
  model: "llama-3.1-8b",
  instance: "n1-i0",
  node: "n2",
  request: "r1",
  listener: "g1",
  job: "j1",
  key: "k1",
};
const subjectOf = (def: MessageDef): string => def.subject.build(params as never);

describe("2,000 garbage payloads on every declared subject, against a real nats-server", () => {
  let fx: NatsFixture;
  const buses: NatsBus[] = [];
  const clock = new WallClock({ seed: 5 });
  let auditor: BusAuditor;
  let target: EveryoneActor;
  let node: DemoNodeActor;
  let region: DemoRegionActor;
  const demoLog: DemoLogEntry[] = [];
  const errorReplyCodes = new Map<string, number>();
  const targetLog: { level: string; msg: string | undefined; obj: object }[] = [];

  const ctx = async (name: string): Promise<ActorContext> => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };

  beforeAll(async () => {
    fx = await startNats();
    auditor = new BusAuditor(await ctx("auditor"));
    target = new EveryoneActor({ ...(await ctx("target")), log: memoryLogger(targetLog) });
    node = new DemoNodeActor(await ctx("node"), {
      region: "demo",
      nodeId: "n1",
      heartbeatMs: 100,
      log: demoLog,
    });
    region = new DemoRegionActor(await ctx("region"), { region: "demo", log: demoLog });
    for (const a of [auditor, target, node, region]) await a.start();
    for (const b of buses) await b.flush();

    const fuzzer = await NatsBus.connect({ servers: fx.url, name: "fuzzer" });
    buses.push(fuzzer);
    for (const def of MESSAGES) {
      const subject = subjectOf(def);
      const classic = garbagePayloads(def, PER_SUBJECT / 2, 11);
      const structured = structuredGarbage(def, PER_SUBJECT / 2, 11);
      // Interleaved, so both kinds also arrive as requests.
      const payloads = classic.flatMap((p, i) => [p, structured[i]!]);
      const asRequests = def.reply ? AS_REQUESTS : 0;
      for (const p of payloads.slice(asRequests)) fuzzer.publishRaw(subject, p);
      // Some garbage arrives as requests: the responder must answer each with a typed error reply.
      await Promise.all(
        payloads.slice(0, asRequests).map(async (p) => {
          const reply = await fuzzer.connection.request(subject, p, { timeout: 5000 });
          const d = decode(reply.data);
          const r = d.ok ? validateReply(def, d.value) : d;
          const code = r.ok
            ? "ok"
            : ((r.error.details as { code?: string } | undefined)?.code ?? r.error.code);
          errorReplyCodes.set(String(code), (errorReplyCodes.get(String(code)) ?? 0) + 1);
        }),
      );
    }
    await fuzzer.flush();
    // Wait until the auditor has seen everything (bounded).
    const total = MESSAGES.length * PER_SUBJECT;
    for (let i = 0; i < 400 && (auditor.stats().rejected < total || target.stats().rejected < total); i++) {
      await clock.sleep(50);
    }
  }, 120_000);

  afterAll(async () => {
    for (const a of [auditor, target, node, region]) await a?.stop();
    for (const b of buses) await b.close();
    clock.cancelAll();
    await fx?.stop();
  });

  // The demo pair keeps publishing valid traffic on these while the fuzzer runs.
  const demoTraffic = new Set(["Heartbeat", "LoadReport", "InstanceTransition", "NodeCommand"]);

  it("the auditor rejects and counts every one of them, per subject", () => {
    const counts = auditor.counts();
    for (const def of MESSAGES) {
      expect(counts[def.name]?.rejected, def.name).toBe(PER_SUBJECT);
      if (!demoTraffic.has(def.name)) expect(counts[def.name]?.valid, def.name).toBe(0);
    }
    const byCode = auditor.stats().rejectedByCode;
    expect(Object.keys(byCode).sort()).toEqual(["DECODE", "SCHEMA", "VERSION"]);
    expect(auditor.stats().handlerErrors).toBe(0);
  });

  it("the listening actor rejects every one with a typed error and never runs its handler on garbage", () => {
    const s = target.stats();
    expect(s.rejected).toBe(MESSAGES.length * PER_SUBJECT);
    for (const def of MESSAGES) expect(s.rejectedBySubject[def.subject.template], def.name).toBe(PER_SUBJECT);
    for (const def of MESSAGES) {
      if (!demoTraffic.has(def.name)) expect(target.validByName.get(def.name) ?? 0, def.name).toBe(0);
    }
    expect(s.handlerErrors, JSON.stringify(targetLog.filter((l) => l.level === "error").slice(0, 3))).toBe(0);
  });

  it("garbage requests get typed error replies", () => {
    const requests = MESSAGES.filter((m) => m.reply).length * AS_REQUESTS;
    const total = [...errorReplyCodes.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(requests);
    expect(errorReplyCodes.get("ok")).toBeUndefined();
    for (const code of errorReplyCodes.keys()) expect(["DECODE", "SCHEMA", "VERSION"]).toContain(code);
  });

  it("`nats micro stats` shows each actor's reject counters (services API)", async () => {
    const fuzzer = buses.at(-1)!;
    const client = fuzzer.connection.services.client();
    const stats: { name: string; endpoints: { name: string; num_requests: number; data: unknown }[] }[] = [];
    for await (const s of await client.stats("fuzz-target")) stats.push(s as never);
    expect(stats).toHaveLength(1);
    const endpoints = stats[0]!.endpoints;
    expect(endpoints.map((e) => e.name).sort()).toEqual(MESSAGES.map((m) => m.name).sort());
    const plan = endpoints.find((e) => e.name === "Plan")!;
    expect(plan.num_requests).toBeGreaterThanOrEqual(PER_SUBJECT);
    expect(plan.data).toMatchObject({ rejectedBySubject: { "sage.plan": PER_SUBJECT } });
  });

  it("every actor is still up and serving valid traffic afterwards", async () => {
    for (const a of [auditor, target, node, region]) expect(a.isRunning).toBe(true);
    const fuzzer = buses.at(-1)!;
    for (const def of MESSAGES.filter((m) => m.reply)) {
      const reply = await fuzzer.request(subjectOf(def), envelope(def, def.sample() as object), {
        timeoutMs: 2000,
      });
      const d = reply.data();
      expect(d.ok && validateReply(def, d.value).ok, def.name).toBe(true);
    }
    const beatsBefore = demoLog.filter((e) => e.event === "heartbeat").length;
    await clock.sleep(350);
    expect(demoLog.filter((e) => e.event === "heartbeat").length).toBeGreaterThan(beatsBefore);
    // The demo node still answers commands on its own subject.
    const r = await fuzzer.request(
      NodeCommand.subject.build({ node: "n1" }),
      envelope(NodeCommand, { commandId: "after", action: "drain", issuedAtMs: 1 }),
      { timeoutMs: 2000 },
    );
    const d = r.data();
    const v = d.ok ? validateReply(NodeCommand, d.value) : d;
    // An answer to this command (accepted or refused by the lifecycle rule, depending on where the
    // valid samples above left the node), not an error.
    expect(v.ok && (v.value as { commandId: string }).commandId).toBe("after");
  });
});
