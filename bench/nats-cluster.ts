/**
 * NATS cluster vs one server (issue 18): routing latency and request throughput through a 3-server
 * cluster against one nats-server, and the cost of losing a server — the load of bench/load-core.ts with
 * the SAGE_NIW leader's server SIGKILLed (failover time: last token before the kill → first token after,
 * on long streams running across it). `--quick`: shorter runs.
 */

import { loadavg } from "node:os";
import { NatsBus, startNatsCluster, startNatsServer } from "@sageserve/nats";
import { envelope, RouteRequest } from "@sageserve/protocol";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { runLoad } from "./load-core.js";
import { announceInstances, fmt, machine, percentile, writeSection } from "./report.js";

const quick = process.argv.includes("--quick");
const RATES = quick ? [500, 1_000] : [500, 1_000, 2_000];
const SECONDS = quick ? 1 : 3;
const CLOSED_LOOP_S = quick ? 2 : 5;

interface Topology {
  name: string;
  /** URL for the router's and the responders' connections, and for the client's. */
  serverSide: string[];
  clientSide: string[];
  stop(): Promise<void>;
}

async function topologies(): Promise<Topology[]> {
  const one = await startNatsServer();
  const c = await startNatsCluster({ size: 3, name: "bench" });
  return [
    { name: "one server", serverSide: [one.url], clientSide: [one.url], stop: () => one.stop() },
    {
      name: "3-server cluster, client and router on one server",
      serverSide: [c.urls[0]!],
      clientSide: [c.urls[0]!],
      stop: async () => {},
    },
    {
      name: "3-server cluster, client and router on different servers (one route hop each way)",
      serverSide: [c.urls[0]!],
      clientSide: [c.urls[1]!],
      stop: () => c.stop(),
    },
  ];
}

async function measure(t: Topology) {
  const clock = new WallClock({ seed: 2 });
  const at = (servers: string[], name: string) => NatsBus.connect({ servers, name, noRandomize: true });
  const router = new RouterActor(
    { bus: await at(t.serverSide, "router"), clock },
    { regions: ["westus"], models: ["m"] },
  );
  await router.start();
  const node = await at(t.serverSide, "node");
  node.subscribe("sage.node.*.infer", () => {});
  const client = await at(t.clientSide, "client");
  announceInstances(client);
  await client.flush();
  // Wait until the router knows the instances (a route answers "routed").
  let seq = 0;
  const route = () =>
    client.request(
      RouteRequest.subject.build({ region: "westus", model: "m" }),
      envelope(RouteRequest, {
        ...RouteRequest.sample(),
        requestId: `b${seq++}`,
        model: "m",
        originRegion: "westus",
        arrivalMs: Date.now(),
      }),
      { timeoutMs: 5_000 },
    );
  while (router.routableInstances().length < 16) await clock.sleep(20);
  const latency: { rate: number; p50: number; p99: number }[] = [];
  for (const rate of RATES) {
    const lat: number[] = [];
    const pending: Promise<void>[] = [];
    const t0 = performance.now();
    for (let i = 0; i < rate * SECONDS; i++) {
      const wait = t0 + (i * 1000) / rate - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      const s = performance.now();
      pending.push(route().then(() => void lat.push(performance.now() - s)));
    }
    await Promise.all(pending);
    lat.sort((a, b) => a - b);
    latency.push({ rate, p50: percentile(lat, 50), p99: percentile(lat, 99) });
  }
  // Closed loop: 64 outstanding routing requests, as many as the path answers.
  let done = 0;
  const end = performance.now() + CLOSED_LOOP_S * 1000;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (performance.now() < end) {
        await route();
        done++;
      }
    }),
  );
  const throughput = done / CLOSED_LOOP_S;
  await router.stop();
  for (const b of [router.bus, node, client]) await b.close();
  clock.cancelAll();
  return { latency, throughput };
}

const tops = await topologies();
const results: { t: Topology; r: Awaited<ReturnType<typeof measure>> }[] = [];
for (const t of tops) {
  results.push({ t, r: await measure(t) });
  console.log(t.name, JSON.stringify(results.at(-1)!.r));
}
for (const t of tops) await t.stop();

const durationS = quick ? 20 : 60;
const rate = 20;
const fault = await runLoad({
  durationS,
  rate,
  seed: 5,
  natsServers: 3,
  natsFault: { killAtS: quick ? 6 : 20, restartAfterS: quick ? 3 : 10 },
});
const f = fault.nats!;
const sent = fault.sent["iw-fast"] + fault.sent["iw-normal"] + fault.sent.niw;
const completed = fault.completed["iw-fast"] + fault.completed["iw-normal"] + fault.completed.niw;
console.log(
  JSON.stringify({
    sent,
    completed,
    lost: fault.lost,
    lostExamples: fault.lostExamples,
    errors: fault.errors,
    nats: f,
  }),
);

const base = results[0]!.r;
const md = `## NATS: a 3-server cluster vs one server, and losing a server (\`bench/nats-cluster.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. Every nats-server, the router, the responders and the client
share the 2 cores (loopback). Routing: RouteRequest request/reply to the router actor (validation, choice among 16
instances, forward of the InferenceRequest), open loop at each rate for ${SECONDS} s, then ${CLOSED_LOOP_S} s closed loop with 64
outstanding requests (throughput).

| topology | ${RATES.map((r) => `p50 / p99 ms at ${r.toLocaleString("en-US")}/s`).join(" | ")} | closed-loop routing req/s | vs one server |
| --- | ${RATES.map(() => "---:").join(" | ")} | ---: | ---: |
${results
  .map(
    ({ t, r }) =>
      `| ${t.name} | ${r.latency.map((l) => `${fmt(l.p50, 2)} / ${fmt(l.p99, 2)}`).join(" | ")} | ${fmt(r.throughput, 0)} | ${fmt(r.throughput / base.throughput, 2)}× |`,
  )
  .join("\n")}

Failover (bench/load-core.ts, ${durationS} s at ${rate} requests/s through gateway → router ×2 → node agents → engine emulator
processes on a 3-server cluster; SIGKILL of the server leading SAGE_NIW, which carries the router's, gateway's,
region agent's and one node agent per model's connections; restarted ${quick ? 3 : 10} s later):

| sent | completed | typed errors | lost | clients failed over | client failover | SAGE_NIW new leader | failover gap (last token before the kill → first after) | long streams across the kill | restarted server current again |
| ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | --- | ---: |
| ${sent} | ${completed} | ${
  Object.entries(fault.errors)
    .map(([k, n]) => `${k}: ${n}`)
    .join(", ") || "none"
} | ${fault.lost} | ${f.clientsOnKilled.length} (${f.clientsOnKilled.join(", ")}) | ${f.clientFailoverMs} ms | ${f.niwLeaderMs} ms | ${f.failoverGapMs} ms (${f.streamsAcrossKill} streams) | ${Object.entries(
  f.probeStreams,
)
  .map(([k, n]) => `${k} ${n}`)
  .join(", ")} of 4 | ${f.catchUpMs} ms |

${fault.lost ? `\nLost: ${fault.lostExamples.join("; ")}.\n` : ""}
The stream's new leader takes 4–10 s (nats-server 2.9's Raft election timeout); batch jobs accepted meanwhile are
held by \`NatsBus.durablePublish\` (retried with one message id) and complete. Streams running across the kill lose
the chunks that were inside the dead server (core NATS is at most once; chunks carry a \`seq\`, but the gateway
does not check it for gaps): see docs/reliability.md, known gaps. Load average on this machine during the run:
${loadavg()
  .map((x) => x.toFixed(1))
  .join(" / ")} (1 / 5 / 15 min; other sessions share it, so it was not quiet).
`;
writeSection("nats-cluster", md);
console.log(md);
if (fault.lost > 0) process.exitCode = 1;
