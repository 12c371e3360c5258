import { NatsBus } from "@sageserve/nats";
import {
  decode,
  ErrorReplySchema,
  encode,
  envelope,
  MESSAGES,
  type MessageDef,
  SageError,
  validatePayload,
  validateReply,
} from "@sageserve/protocol";
import {
  Actor,
  type ActorContext,
  BusAuditor,
  MemoryBroker,
  VirtualClock,
  WallClock,
} from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FuzzCase, PayloadFuzzer, payloadTarget, replyTarget } from "./support/fuzz.js";
import { table, writeFuzzReport } from "./support/fuzz-report.js";
import { type NatsFixture, startNats } from "./support/nats.js";

/**
 * Issue 9, "Bad input": every subject's decoder gets ≥ 10,000 seeded structured mutations of its
 * message's valid sample (test/support/fuzz.ts: random bytes, truncation, wrong versions, deleted
 * and mistyped fields, NaN/±Infinity/-0/1e308/2^53+1/64-bit integers, 1 MB strings, huge arrays and
 * maps, 10,000-deep nesting, extension types, `__proto__` keys, duplicate keys, JSON text…).
 *
 * Each case goes (1) through the decode path in-process — `decode` then `validatePayload` — with zod
 * as the oracle for which cases are valid by chance, and (2) through the real actor runtime: raw
 * bytes published on the message's subject on an in-memory broker (msgpack codec, virtual clock) to
 * a BusAuditor and an actor that listens to (and answers) every subject. Nothing may throw; every
 * case must be counted once, under the same verdict, by both; every request gets a typed answer.
 * Request replies are fuzzed the same way through `validateReply`. A last block replays the
 * payloads that once escaped as untyped exceptions over a real nats-server.
 */
const PER_SUBJECT = Number(process.env.FUZZ_CASES ?? 10_000);
const SEED = 9;
const BATCH = 250;

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

/** Answers every request type with its sample reply; counts what its handlers saw. */
class EveryoneActor extends Actor {
  readonly valid = new Map<string, number>();
  constructor(ctx: ActorContext) {
    super(ctx, { role: "fuzz-target", id: "fuzz-target" });
  }
  protected setup(): void {
    for (const def of MESSAGES) {
      const count = (): void => {
        this.valid.set(def.name, (this.valid.get(def.name) ?? 0) + 1);
      };
      if (def.reply)
        this.handle(
          def,
          {},
          () => {
            count();
            return (def.replySample as () => never)();
          },
          { broadcast: true },
        );
      else this.on(def, {}, count, { broadcast: true });
    }
  }
}

type Verdict = "ok" | "DECODE" | "TOO_LARGE" | "VERSION" | "SCHEMA" | "REMOTE" | "THROWN";

interface Tally {
  cases: number;
  byFamily: Record<string, number>;
  byVerdict: Record<string, number>;
  /** Cases where ajv (the runtime checker) and zod (the declared schema) disagreed. */
  disagreements: number;
  examples: string[];
}

const newTally = (): Tally => ({ cases: 0, byFamily: {}, byVerdict: {}, disagreements: 0, examples: [] });
const bump = (m: Record<string, number>, k: string, n = 1) => {
  m[k] = (m[k] ?? 0) + n;
};

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** Verdict of the decode path for one payload, with zod's opinion as the oracle. */
function judgePayload(def: MessageDef, c: FuzzCase, tally: Tally): Verdict {
  let verdict: Verdict;
  let expectOk: boolean | undefined;
  try {
    const d = decode(c.bytes);
    if (!d.ok) {
      verdict = d.error instanceof SageError ? (d.error.code as Verdict) : "THROWN";
    } else {
      expectOk =
        isMap(d.value) && d.value.v === def.version && def.schema.safeParse(d.value).success === true;
      const r = validatePayload(def, d.value, subjectOf(def));
      if (r.ok) verdict = "ok";
      else verdict = r.error instanceof SageError ? (r.error.code as Verdict) : "THROWN";
    }
  } catch (e) {
    verdict = e instanceof SageError ? (e.code as Verdict) : "THROWN";
    if (tally.examples.length < 5) tally.examples.push(`${c.family}: threw ${String(e)}`);
  }
  record(tally, c, verdict, expectOk);
  return verdict;
}

/** Verdict of `validateReply` (the requester's decoder) for one reply payload. */
function judgeReply(def: MessageDef, c: FuzzCase, tally: Tally): Verdict {
  let verdict: Verdict;
  let expectOk: boolean | undefined;
  try {
    const d = decode(c.bytes);
    if (!d.ok) verdict = d.error.code as Verdict;
    else {
      const isError = isMap(d.value) && "error" in d.value && ErrorReplySchema.safeParse(d.value).success;
      expectOk =
        !isError &&
        isMap(d.value) &&
        d.value.v === def.version &&
        (def.reply as NonNullable<MessageDef["reply"]>).safeParse(d.value).success === true;
      const r = validateReply(def, d.value);
      verdict = r.ok ? "ok" : (r.error.code as Verdict);
      if (isError && verdict !== "REMOTE") verdict = "THROWN"; // an ErrorReply must come back as REMOTE
    }
  } catch (e) {
    verdict = e instanceof SageError ? (e.code as Verdict) : "THROWN";
    if (tally.examples.length < 5) tally.examples.push(`${c.family}: threw ${String(e)}`);
  }
  record(tally, c, verdict, expectOk);
  return verdict;
}

function record(tally: Tally, c: FuzzCase, verdict: Verdict, expectOk: boolean | undefined): void {
  tally.cases++;
  bump(tally.byFamily, c.family);
  bump(tally.byVerdict, verdict);
  if (expectOk !== undefined && expectOk !== (verdict === "ok")) {
    tally.disagreements++;
    if (tally.examples.length < 5)
      tally.examples.push(`${c.family}: zod ${expectOk ? "accepts" : "rejects"}, runtime says ${verdict}`);
  }
}

describe(`fuzzing every subject's decoder: ${PER_SUBJECT.toLocaleString("en")} structured mutations per message`, () => {
  const payloads = new Map<string, Tally>();
  const replies = new Map<string, Tally>();
  /** Typed answers the actor gave to fuzzed requests, per message and verdict. */
  const answered = new Map<string, Record<string, number>>();
  const mismatchedAnswers: string[] = [];
  const clock = new VirtualClock({ seed: SEED });
  const broker = new MemoryBroker(clock);
  const auditor = new BusAuditor({ bus: broker.connect("auditor"), clock });
  const target = new EveryoneActor({ bus: broker.connect("target"), clock });
  const fuzzer = broker.connect("fuzzer");
  const wall = { payloadsMs: 0, repliesMs: 0 };

  beforeAll(async () => {
    await auditor.start();
    await target.start();
    // Replies to fuzzed requests come back on one inbox per case: `_INBOX.fuzz.<message>.<case>`.
    const expected = new Map<string, Verdict>();
    fuzzer.subscribe("_INBOX.fuzz.>", (m) => {
      const [, , name, i] = m.subject.split(".");
      const def = MESSAGES.find((d) => d.name === name)!;
      const d = m.data();
      const r = d.ok ? validateReply(def, d.value) : d;
      const got = r.ok
        ? "ok"
        : String((r.error.details as { code?: string } | undefined)?.code ?? r.error.code);
      bump(answered.get(name!) ?? answered.set(name!, {}).get(name!)!, got);
      const want = expected.get(`${name}.${i}`);
      if (got !== want && mismatchedAnswers.length < 10)
        mismatchedAnswers.push(`${name} case ${i}: decode path says ${want}, actor answered ${got}`);
    });

    const t0 = performance.now();
    for (const def of MESSAGES) {
      const tally = newTally();
      payloads.set(def.name, tally);
      const gen = new PayloadFuzzer(payloadTarget(def), SEED);
      const subject = subjectOf(def);
      for (let i = 0; i < PER_SUBJECT; i++) {
        const c = gen.next();
        const verdict = judgePayload(def, c, tally);
        if (def.reply) {
          expected.set(`${def.name}.${i}`, verdict);
          fuzzer.publishRaw(subject, c.bytes, { reply: `_INBOX.fuzz.${def.name}.${i}` });
        } else fuzzer.publishRaw(subject, c.bytes);
        // Deliver in batches, so MB-sized cases do not pile up in memory.
        if (i % BATCH === BATCH - 1) await clock.advance(1);
      }
      await clock.advance(1);
    }
    wall.payloadsMs = performance.now() - t0;

    const t1 = performance.now();
    for (const def of MESSAGES.filter((m) => m.reply)) {
      const tally = newTally();
      replies.set(def.name, tally);
      const gen = new PayloadFuzzer(replyTarget(def), SEED);
      // One reply in five starts from an ErrorReply instead (a responder's typed failure).
      const errGen = new PayloadFuzzer(
        {
          name: `${def.name}.error`,
          version: def.version,
          sample: () => ({ error: { code: "NO_CAPACITY", message: "busy" } }),
        },
        SEED,
      );
      for (let i = 0; i < PER_SUBJECT; i++) judgeReply(def, i % 5 === 4 ? errGen.next() : gen.next(), tally);
    }
    wall.repliesMs = performance.now() - t1;
  }, 600_000);

  afterAll(async () => {
    await auditor.stop();
    await target.stop();
    const rows = MESSAGES.map((def) => {
      const t = payloads.get(def.name) ?? newTally();
      const v = t.byVerdict;
      return [
        def.name,
        t.cases,
        v.ok ?? 0,
        v.DECODE ?? 0,
        v.TOO_LARGE ?? 0,
        v.VERSION ?? 0,
        v.SCHEMA ?? 0,
        v.THROWN ?? 0,
        replies.get(def.name)?.cases ?? "-",
      ];
    });
    const total = [...payloads.values()].reduce((a, t) => a + t.cases, 0);
    const text = table(
      ["subject payloads", "cases", "valid", "DECODE", "TOO_LARGE", "VERSION", "SCHEMA", "thrown", "replies"],
      rows,
    );
    const byFamily: Record<string, number> = {};
    for (const t of payloads.values()) for (const [f, n] of Object.entries(t.byFamily)) bump(byFamily, f, n);
    console.log(
      `${text}\n${total.toLocaleString("en")} payload cases in ${(wall.payloadsMs / 1000).toFixed(1)} s (decode path + actor runtime), ` +
        `${[...replies.values()].reduce((a, t) => a + t.cases, 0).toLocaleString("en")} reply cases in ${(wall.repliesMs / 1000).toFixed(1)} s\n` +
        `families: ${JSON.stringify(byFamily)}`,
    );
    const totals: Record<string, number> = {};
    for (const t of payloads.values()) for (const [k, n] of Object.entries(t.byVerdict)) bump(totals, k, n);
    const path = writeFuzzReport("subjects", {
      command: "FUZZ_REPORT=1 npx vitest run test/fuzz-subjects.test.ts",
      node: process.version,
      seed: SEED,
      totals: { cases: total, byVerdict: totals },
      casesPerSubject: PER_SUBJECT,
      wallSeconds: {
        payloads: +(wall.payloadsMs / 1000).toFixed(2),
        replies: +(wall.repliesMs / 1000).toFixed(2),
      },
      families: byFamily,
      payloads: Object.fromEntries(
        MESSAGES.map((d) => {
          const t = payloads.get(d.name)!;
          return [
            d.name,
            { subject: d.subject.template, cases: t.cases, byVerdict: t.byVerdict, byFamily: t.byFamily },
          ];
        }),
      ),
      replies: Object.fromEntries(
        [...replies].map(([n, t]) => [n, { cases: t.cases, byVerdict: t.byVerdict }]),
      ),
      actorAnswers: Object.fromEntries(answered),
    });
    if (path) console.log(`fuzz summary written to ${path}`);
  });

  it("nothing throws, and every case gets a typed verdict that zod agrees with, per subject", () => {
    for (const def of MESSAGES) {
      const t = payloads.get(def.name)!;
      expect(t.cases, def.name).toBeGreaterThanOrEqual(Math.min(10_000, PER_SUBJECT));
      expect(
        Object.values(t.byVerdict).reduce((a, b) => a + b, 0),
        def.name,
      ).toBe(t.cases);
      expect(
        Object.values(t.byFamily).reduce((a, b) => a + b, 0),
        def.name,
      ).toBe(t.cases);
      expect(t.byVerdict.THROWN ?? 0, `${def.name}: ${t.examples.join(" | ")}`).toBe(0);
      expect(t.disagreements, `${def.name}: ${t.examples.join(" | ")}`).toBe(0);
      for (const k of Object.keys(t.byVerdict))
        expect(["ok", "DECODE", "TOO_LARGE", "VERSION", "SCHEMA"]).toContain(k);
      // Every family and every kind of rejection is exercised on every subject.
      expect(Object.keys(t.byFamily).length, def.name).toBe(15);
      for (const k of ["DECODE", "TOO_LARGE", "VERSION", "SCHEMA"])
        expect(t.byVerdict[k], `${def.name} ${k}`).toBeGreaterThan(0);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty("polluted");
  });

  it("reply decoders too: every fuzzed reply is valid, a typed rejection or a REMOTE error", () => {
    expect(replies.size).toBe(MESSAGES.filter((m) => m.reply).length);
    for (const [name, t] of replies) {
      expect(t.cases).toBe(PER_SUBJECT);
      expect(
        Object.values(t.byVerdict).reduce((a, b) => a + b, 0),
        name,
      ).toBe(t.cases);
      expect(t.byVerdict.THROWN ?? 0, `${name}: ${t.examples.join(" | ")}`).toBe(0);
      expect(t.disagreements, `${name}: ${t.examples.join(" | ")}`).toBe(0);
      expect(t.byVerdict.REMOTE, name).toBeGreaterThan(0);
    }
  });

  it("the auditor and the listening actor count every case once, under the decode path's verdict", () => {
    const counts = auditor.counts();
    const s = target.stats();
    const byCode: Record<string, number> = {};
    for (const def of MESSAGES) {
      const t = payloads.get(def.name)!;
      const ok = t.byVerdict.ok ?? 0;
      expect(counts[def.name], def.name).toEqual({ valid: ok, rejected: t.cases - ok });
      expect(target.valid.get(def.name) ?? 0, def.name).toBe(ok);
      expect(s.rejectedBySubject[def.subject.template] ?? 0, def.name).toBe(t.cases - ok);
      for (const [k, n] of Object.entries(t.byVerdict)) if (k !== "ok") bump(byCode, k, n);
    }
    expect(auditor.stats().rejectedByCode).toEqual(byCode);
    expect(s.rejectedByCode).toEqual(byCode);
    expect(auditor.stats().handlerErrors).toBe(0);
    expect(s.handlerErrors).toBe(0);
    expect(broker.handlerFailures).toBe(0);
  });

  it("every fuzzed request got a typed answer: the sample reply when valid, else the same error code", () => {
    expect(mismatchedAnswers).toEqual([]);
    for (const def of MESSAGES.filter((m) => m.reply)) {
      const a = answered.get(def.name)!;
      expect(
        Object.values(a).reduce((x, y) => x + y, 0),
        def.name,
      ).toBe(PER_SUBJECT);
    }
  });

  it("the actors keep serving valid traffic afterwards", async () => {
    expect(auditor.isRunning && target.isRunning).toBe(true);
    const before = auditor.counts();
    for (const def of MESSAGES) {
      if (def.reply) {
        const p = fuzzer.request(subjectOf(def), envelope(def, def.sample() as object), { timeoutMs: 1000 });
        await clock.advance(1);
        const d = (await p).data();
        expect(d.ok && validateReply(def, d.value).ok, def.name).toBe(true);
      } else {
        fuzzer.publish(subjectOf(def), envelope(def, def.sample() as object));
        await clock.advance(1);
      }
    }
    const after = auditor.counts();
    for (const def of MESSAGES) expect(after[def.name]!.valid, def.name).toBe(before[def.name]!.valid + 1);
  });
});

/**
 * The payloads that once escaped the decode path as untyped exceptions — swallowed by the bus
 * adapter, so never counted and never answered (the requester waited for its timeout) — now get a
 * typed ErrorReply over a real nats-server.
 */
describe("regressions over a real nats-server: formerly escaping payloads get typed error replies", () => {
  let fx: NatsFixture;
  const clock = new WallClock({ seed: SEED });
  const buses: NatsBus[] = [];
  let target: EveryoneActor;
  let auditor: BusAuditor;

  beforeAll(async () => {
    fx = await startNats();
    for (const name of ["target", "auditor", "client"])
      buses.push(await NatsBus.connect({ servers: fx.url, name }));
    target = new EveryoneActor({ bus: buses[0]!, clock });
    auditor = new BusAuditor({ bus: buses[1]!, clock });
    await target.start();
    await auditor.start();
    for (const b of buses) await b.flush();
  });

  afterAll(async () => {
    await target?.stop();
    await auditor?.stop();
    for (const b of buses) await b.close();
    clock.cancelAll();
    await fx?.stop();
  });

  const cases: [string, (def: MessageDef) => Record<string, unknown>, string][] = [
    // JSON.stringify threw "Do not know how to serialize a BigInt" in validatePayload's VERSION message.
    [
      "a 64-bit integer version (decodes to a bigint)",
      (def) => ({ ...envelope(def, def.sample() as object), v: 1n }),
      "VERSION",
    ],
    [
      "a uint64-max version",
      (def) => ({ ...envelope(def, def.sample() as object), v: 2n ** 64n - 1n }),
      "VERSION",
    ],
    // ajv took Infinity for a number and an integer; zod does not.
    [
      "Infinity in a numeric field",
      (def) => {
        const p = envelope(def, def.sample() as object);
        const k = Object.keys(p).find((f) => f !== "v" && typeof p[f] === "number")!;
        return { ...p, [k]: Number.POSITIVE_INFINITY };
      },
      "SCHEMA",
    ],
  ];

  it.each(cases)("%s", async (_what, make, code) => {
    const client = buses[2]!;
    const rejectedBefore = auditor.stats().rejected;
    const defs = MESSAGES.filter(
      (m) => m.reply && Object.values(m.sample() as object).some((x) => typeof x === "number"),
    );
    for (const def of defs) {
      const reply = await client.connection.request(subjectOf(def), encode(make(def)), { timeout: 2000 });
      const d = decode(reply.data);
      const r = d.ok ? validateReply(def, d.value) : d;
      expect(r.ok, def.name).toBe(false);
      if (!r.ok) expect((r.error.details as { code?: string }).code, def.name).toBe(code);
    }
    for (let i = 0; i < 100 && auditor.stats().rejected < rejectedBefore + defs.length; i++)
      await clock.sleep(20);
    expect(auditor.stats().rejected).toBe(rejectedBefore + defs.length);
  });
});
