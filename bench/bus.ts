/**
 * Bus benchmark: request/reply round trip and publish throughput on a real
 * nats-server vs the in-memory bus, msgpackr vs JSON, and the wall time of an
 * idle simulated day. Prints a table and writes docs/benchmarks.md.
 */

import { NatsBus, startNatsServer } from "@sageserve/nats";
import {
  decode,
  encode,
  envelope,
  Heartbeat,
  LoadReport,
  type MessageDef,
  Plan,
  RouteRequest,
  validatePayload,
} from "@sageserve/protocol";
import { type Bus, MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { fmt, machine, percentile, writeSection } from "./report.js";

const quick = process.argv.includes("--quick");
const RT_N = quick ? 1000 : 10_000;
const PUB_N = quick ? 20_000 : 200_000;
const payload = envelope(RouteRequest, RouteRequest.sample());

interface RoundTrip {
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

async function roundTrips(client: Bus, server: Bus, pump: () => Promise<void>): Promise<RoundTrip> {
  server.subscribe("bench.rt", (m) => {
    const d = m.data();
    m.respond(d.ok ? d.value : null);
  });
  await pump();
  const samples: number[] = [];
  for (let i = 0; i < RT_N + 200; i++) {
    const t0 = process.hrtime.bigint();
    const p = client.request("bench.rt", payload, { timeoutMs: 5000 });
    await pump();
    const reply = await p;
    reply.data();
    const us = Number(process.hrtime.bigint() - t0) / 1000;
    if (i >= 200) samples.push(us); // warm-up discarded
  }
  samples.sort((a, b) => a - b);
  return {
    p50Us: percentile(samples, 50),
    p99Us: percentile(samples, 99),
    meanUs: samples.reduce((a, b) => a + b, 0) / samples.length,
  };
}

async function throughput(pub: Bus, sub: Bus, pump: () => Promise<void>): Promise<number> {
  let got = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => (done = r));
  sub.subscribe("bench.tp", (m) => {
    m.data();
    if (++got === PUB_N) done();
  });
  await pump();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < PUB_N; i++) {
    pub.publish("bench.tp", { ...payload, seq: i });
    if (i % 1000 === 999) await pump();
  }
  await pump();
  await all;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return PUB_N / s;
}

function codec(): { name: string; encodeNs: number; decodeNs: number; bytes: number }[] {
  const samples = { RouteRequest: payload, "Plan (sample)": envelope(Plan, Plan.sample()) };
  const rows = [];
  for (const [label, value] of Object.entries(samples)) {
    for (const kind of ["msgpackr", "JSON"] as const) {
      const enc = kind === "msgpackr" ? () => encode(value) : () => Buffer.from(JSON.stringify(value));
      const dec =
        kind === "msgpackr"
          ? (b: Uint8Array) => decode(b)
          : (b: Uint8Array) => JSON.parse(Buffer.from(b).toString());
      const bytes = enc();
      const n = quick ? 50_000 : 300_000;
      for (let i = 0; i < 20_000; i++) dec(enc());
      let t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) enc();
      const encodeNs = Number(process.hrtime.bigint() - t0) / n;
      t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) dec(bytes);
      const decodeNs = Number(process.hrtime.bigint() - t0) / n;
      rows.push({ name: `${label} ${kind}`, encodeNs, decodeNs, bytes: bytes.byteLength });
    }
  }
  return rows;
}

function validation(): { name: string; compiledNs: number; zodNs: number }[] {
  const n = quick ? 50_000 : 300_000;
  return ([RouteRequest, LoadReport, Heartbeat, Plan] as MessageDef[]).map((def) => {
    const wire = envelope(def, def.sample() as object);
    const time = (fn: () => unknown): number => {
      for (let i = 0; i < 10_000; i++) fn();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i++) fn();
      return Number(process.hrtime.bigint() - t0) / n;
    };
    const compiledNs = time(() => validatePayload(def, wire));
    const zodNs = time(() => def.schema.safeParse(wire));
    return { name: def.name, compiledNs, zodNs };
  });
}

async function idleDay(): Promise<{ wallMs: number; events: number }> {
  const { Actor } = await import("@sageserve/runtime");
  const clock = new VirtualClock({ seed: 1 });
  const broker = new MemoryBroker(clock, { codec: "none" });
  class Node extends Actor {
    seq = 0;
    protected setup(): void {
      this.every(5000, () => {
        this.publish(
          Heartbeat,
          { region: "r", node: this.identity.id },
          {
            ...Heartbeat.sample(),
            nodeId: this.identity.id,
            seq: ++this.seq,
            atMs: this.clock.now(),
          },
        );
      });
    }
  }
  class Watcher extends Actor {
    protected setup(): void {
      this.on(Heartbeat, {}, () => {});
      this.every(60_000, () => {});
      this.cron("0 * * * *", () => {});
    }
  }
  const actors = [
    ...[1, 2, 3, 4, 5, 6].map(
      (i) => new Node({ bus: broker.connect(), clock }, { role: "node", id: `n${i}` }),
    ),
    new Watcher({ bus: broker.connect(), clock }, { role: "watcher", id: "w" }),
  ];
  for (const a of actors) await a.start();
  const t0 = performance.now();
  await clock.advance(24 * 3600_000);
  return { wallMs: performance.now() - t0, events: clock.executed };
}

async function main(): Promise<void> {
  const server = process.env.NATS_URL ? undefined : await startNatsServer();
  const url = process.env.NATS_URL ?? server!.url;
  const nc = await NatsBus.connect({ servers: url, name: "bench-client" });
  const ns = await NatsBus.connect({ servers: url, name: "bench-server" });
  const natsPump = async () => {
    await nc.flush();
  };
  const natsRt = await roundTrips(nc, ns, natsPump);
  const natsTp = await throughput(nc, ns, natsPump);
  await nc.close();
  await ns.close();
  await server?.stop();

  const mem = async (codecKind: "msgpack" | "none") => {
    const clock = new VirtualClock();
    const broker = new MemoryBroker(clock, { codec: codecKind });
    const pump = () => clock.advance(0);
    const rt = await roundTrips(broker.connect(), broker.connect(), pump);
    const clock2 = new VirtualClock();
    const broker2 = new MemoryBroker(clock2, { codec: codecKind });
    const tp = await throughput(broker2.connect(), broker2.connect(), () => clock2.advance(0));
    return { rt, tp };
  };
  const memMsgpack = await mem("msgpack");
  const memNone = await mem("none");
  const codecRows = codec();
  const validationRows = validation();
  const day = await idleDay();

  const rtRow = (name: string, r: RoundTrip) =>
    `| ${name} | ${fmt(r.p50Us)} | ${fmt(r.p99Us)} | ${fmt(r.meanUs)} | ${(natsRt.p50Us / r.p50Us).toFixed(1)}× |`;
  const tpRow = (name: string, t: number) => `| ${name} | ${fmt(t)} | ${(t / natsTp).toFixed(1)}× |`;
  const md = `## Bus: NATS vs in-memory, msgpackr vs JSON (\`bench/bus.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. nats-server ${server ? "spawned by the benchmark" : `at NATS_URL`}, client and responder in the same process on two connections. Payload: a \`RouteRequest\` (${codecRows[0]?.bytes} B as msgpack). Wall-clock microseconds; for the memory bus a round trip is the real CPU cost of one request/reply through the virtual clock (virtual time does not advance).

Request/reply round trip (${RT_N.toLocaleString("en-US")} sequential requests after 200 warm-up):

| bus | p50 µs | p99 µs | mean µs | p50 speed-up vs NATS |
| --- | ---: | ---: | ---: | ---: |
${rtRow("NATS (loopback)", natsRt)}
${rtRow("memory, msgpack codec", memMsgpack.rt)}
${rtRow("memory, no codec (simulation mode)", memNone.rt)}

Publish throughput (${PUB_N.toLocaleString("en-US")} messages, one publisher, one subscriber that decodes each):

| bus | messages/s | vs NATS |
| --- | ---: | ---: |
${tpRow("NATS (loopback)", natsTp)}
${tpRow("memory, msgpack codec", memMsgpack.tp)}
${tpRow("memory, no codec (simulation mode)", memNone.tp)}

Codec cost per message (ns/op, lower is better):

| payload, codec | bytes | encode ns | decode ns |
| --- | ---: | ---: | ---: |
${codecRows.map((r) => `| ${r.name} | ${r.bytes} | ${fmt(r.encodeNs, 0)} | ${fmt(r.decodeNs, 0)} |`).join("\n")}

Schema validation per message (ns/op): the runtime's compiled validator (ajv, from the zod schema's JSON Schema) vs zod's own \`safeParse\`:

| message | compiled ns | zod ns | speed-up |
| --- | ---: | ---: | ---: |
${validationRows.map((r) => `| ${r.name} | ${fmt(r.compiledNs, 0)} | ${fmt(r.zodNs, 0)} | ${(r.zodNs / r.compiledNs).toFixed(1)}× |`).join("\n")}

Idle simulated day (6 node actors heartbeating every 5 s, a watcher with a per-minute timer and an hourly cron; 24 virtual hours, ${day.events.toLocaleString("en-US")} events, 103,680 heartbeats delivered): **${fmt(day.wallMs, 0)} ms** wall time, ${((day.wallMs * 1000) / day.events).toFixed(2)} µs per event.
`;
  console.log(md);
  writeSection("bus", md);
}

await main();
