/**
 * Added latency of routing over a real nats-server at increasing request rates (open loop, loopback):
 * client → router (RouteRequest request/reply, with the router's decision and its forwarding of the
 * InferenceRequest) against a direct baseline, client → a trivial responder standing in for the instance.
 */

import { NatsBus, startNatsServer } from "@sageserve/nats";
import { envelope, RouteRequest } from "@sageserve/protocol";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { announceInstances, fmt, machine, percentile, writeSection } from "./report.js";

const quick = process.argv.includes("--quick");
const RATES = quick ? [250, 1000] : [250, 500, 1000, 2000, 4000];
const SECONDS = quick ? 1 : 3;
const server = await startNatsServer();
const clock = new WallClock({ seed: 2 });
const connect = (name: string) => NatsBus.connect({ servers: server.url, name });
const router = new RouterActor(
  { bus: await connect("router"), clock },
  { regions: ["westus"], models: ["m"] },
);
await router.start();
const node = await connect("node");
node.subscribe("sage.node.*.infer", () => {}); // the instance side of the forward
const direct = await connect("direct");
direct.subscribe("bench.direct", (m) => void m.respond({ ok: true }));
const client = await connect("client");
announceInstances(client);
await client.flush();
await clock.sleep(300);

async function run(rate: number, send: (i: number) => Promise<unknown>): Promise<number[]> {
  const lat: number[] = [];
  const pending: Promise<void>[] = [];
  const total = rate * SECONDS;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const s = performance.now();
    pending.push(send(i).then(() => void lat.push(performance.now() - s)));
  }
  await Promise.all(pending);
  return lat.sort((a, b) => a - b);
}

const rows: string[] = [];
for (const rate of RATES) {
  const base = await run(rate, () => client.request("bench.direct", { q: 1 }, { timeoutMs: 5_000 }));
  const routed = await run(rate, (i) =>
    client.request(
      RouteRequest.subject.build({ region: "westus", model: "m" }),
      envelope(RouteRequest, {
        ...RouteRequest.sample(),
        requestId: `b${rate}-${i}`,
        model: "m",
        originRegion: "westus",
        arrivalMs: Date.now(),
      }),
      { timeoutMs: 5_000 },
    ),
  );
  const p = (xs: number[], q: number) => percentile(xs, q);
  rows.push(
    `| ${rate.toLocaleString("en-US")} | ${fmt(p(base, 50), 3)} / ${fmt(p(base, 99), 3)} | ${fmt(p(routed, 50), 3)} / ${fmt(p(routed, 99), 3)} | **${fmt(p(routed, 50) - p(base, 50), 3)} / ${fmt(p(routed, 99) - p(base, 99), 3)}** |`,
  );
  console.log(rows.at(-1));
}
await router.stop();
for (const b of [router.bus, node, direct, client]) await b.close();
clock.cancelAll();
await server.stop();

const md = `## Routing latency over NATS at increasing rates (\`bench/routing-latency.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. Open loop, ${SECONDS} s per rate, loopback, one nats-server; client, router
and responders in one process sharing the 2 cores. Routed: RouteRequest request/reply to the router, which validates,
chooses among 16 instances and forwards the InferenceRequest. Direct: request/reply to a trivial responder (the
instance). Target: p99 added latency ≤ 1 ms at 2,000 requests/s.

| requests/s | direct p50 / p99 ms | routed p50 / p99 ms | added p50 / p99 ms |
| ---: | ---: | ---: | ---: |
${rows.join("\n")}
`;
writeSection("routing-latency", md);
console.log(md);
