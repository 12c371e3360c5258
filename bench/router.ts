/**
 * Routing decisions per second, in-process: the pure policy (region choice + join-shortest-queue over
 * the endpoint's instances) and the whole RouterActor on the in-memory bus (validation, views, forwarding).
 */
import { InferenceRequest, LoadReport, RouteRequest } from "@sageserve/protocol";
import {
  chooseInstance,
  chooseRegion,
  DEFAULT_ROUTER_CONFIG,
  endpointUtilization,
  type InstanceView,
  RouterActor,
} from "@sageserve/router";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { fmt, machine, writeSection } from "./report.js";

const quick = process.argv.includes("--quick");
const rows: string[] = [];
for (const perEndpoint of [4, 32, 128]) {
  const regions = ["westus", "eastus", "centralus"];
  const views = new Map(
    regions.map((r) => [
      r,
      Array.from(
        { length: perEndpoint },
        (_, i): InstanceView => ({
          instanceId: `${r}-${i}`,
          nodeId: `${r}-n${i}`,
          region: r,
          model: "m",
          pool: undefined,
          state: "serving",
          kvUtilization: (i % 10) / 10,
          kvCapacityTokens: 200_000,
          outstandingTokens: (i * 7919) % 50_000,
          reportedAtMs: 0,
          running: i % 200,
          waiting: 0,
          maxRunning: 256,
          routedTokens: 0,
          routedRequests: 0,
        }),
      ),
    ]),
  );
  const n = quick ? 200_000 : 2_000_000;
  const t0 = performance.now();
  let sink = 0;
  for (let i = 0; i < n; i++) {
    const home = regions[i % 3]!;
    const region = chooseRegion(
      home,
      (r) => endpointUtilization(views.get(r)!, 1_000, DEFAULT_ROUTER_CONFIG),
      regions,
      DEFAULT_ROUTER_CONFIG,
    );
    const v = chooseInstance(views.get(region)!, 1_000, DEFAULT_ROUTER_CONFIG)!;
    v.routedTokens += 10;
    if ((i & 1023) === 0) for (const list of views.values()) for (const x of list) x.routedTokens = 0;
    sink += v.outstandingTokens;
  }
  const s = (performance.now() - t0) / 1000;
  rows.push(`| policy only (region + JSQ) | ${perEndpoint} | ${fmt(n / s, 0)} |`);
  if (sink < 0) console.log(sink);
}

// The whole actor: RouteRequest in, InferenceRequest out, on the in-memory bus (no codec, validated).
{
  const clock = new VirtualClock();
  const broker = new MemoryBroker(clock, { codec: "none" });
  const router = new RouterActor(
    { bus: broker.connect("router"), clock },
    { regions: ["westus"], models: ["m"] },
  );
  await router.start();
  const feed = broker.connect("feed");
  for (let i = 0; i < 32; i++) {
    feed.publish(LoadReport.subject.build({ region: "westus", model: "m", instance: `i${i}` }), {
      ...LoadReport.sample(),
      v: 1,
      instanceId: `i${i}`,
      nodeId: `n${i}`,
      model: "m",
      kvCapacityTokens: 200_000,
      atMs: clock.now(),
    });
  }
  let forwarded = 0;
  feed.subscribe(InferenceRequest.subject.pattern(), () => {
    forwarded++;
  });
  await clock.advance(1);
  const n = quick ? 50_000 : 300_000;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    feed.publish(
      RouteRequest.subject.build({ region: "westus", model: "m" }),
      { ...RouteRequest.sample(), v: 1, requestId: `r${i}`, model: "m", arrivalMs: clock.now() },
      { validated: true },
    );
    if (i % 1000 === 999) await clock.advance(0);
  }
  await clock.advance(0);
  const s = (performance.now() - t0) / 1000;
  rows.push(
    `| RouterActor on the in-memory bus (32 instances, forwarded ${forwarded.toLocaleString("en-US")}) | 32 | ${fmt(n / s, 0)} |`,
  );
}

const md = `## Routing decisions per second (\`bench/router.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. Three regions; "policy only" is the pure decision (home region
unless saturated, then join-shortest-queue on outstanding tokens, with the router's own routed-token accounting);
the actor row includes message validation, the view updates and forwarding the InferenceRequest. Target: ≥ 50,000/s.

| what | instances per endpoint | decisions/s |
| --- | ---: | ---: |
${rows.join("\n")}
`;
writeSection("router", md);
console.log(md);
