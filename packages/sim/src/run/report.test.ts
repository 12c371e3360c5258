import { builtinPerformanceModel } from "@sageserve/engine";
import { envelope, type Payload, RequestDone, TIERS } from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { DEFAULT_SLO, MetricsCollector, type SloTargets } from "./collector.js";
import { renderReportHtml } from "./html.js";
import { beyondProfileSection, type SimReport, sloSection } from "./report.js";

const perf = builtinPerformanceModel();
const gpuOf: Record<string, string> = { "i-h100": "h100", "i-a100": "a100" };

type Done = Payload<typeof RequestDone>;
let seq = 0;
const done = (over: Partial<Done> & Pick<Done, "model" | "tier" | "instanceId" | "inputTokens">): Done => ({
  requestId: `r${seq++}`,
  region: "westus",
  outcome: "ok",
  outputTokens: 10,
  arrivalMs: 0,
  ttftMs: 100,
  tbtMs: 20,
  e2eMs: 1_000,
  ...over,
});

/**
 * Worked out by hand from data/perf-profiles.json (idle prefill, extrapolated past 8,192 tokens):
 * llama2-70b 9,000 tokens: H100 934.6 ms, A100 1,725.1 ms; bloom-176b 9,000 tokens on A100: 4,036 ms.
 */
const requests: Done[] = [
  // IW-fast: 5 finished, 2 met; the A100 9k prompt is infeasible (1,725 ms > 1 s).
  done({ model: "llama2-70b", tier: "iw-fast", instanceId: "i-a100", inputTokens: 9_000, ttftMs: 1_800 }),
  done({ model: "llama2-70b", tier: "iw-fast", instanceId: "i-h100", inputTokens: 9_000, ttftMs: 950 }),
  done({ model: "llama2-70b", tier: "iw-fast", instanceId: "i-a100", inputTokens: 1_000, ttftMs: 400 }),
  done({ model: "llama2-70b", tier: "iw-fast", instanceId: "i-a100", inputTokens: 1_000, ttftMs: 1_200 }),
  // Failed before any instance took it: no GPU type, so judged feasible (a miss) and not beyond range.
  done({ model: "llama2-70b", tier: "iw-fast", instanceId: "router", inputTokens: 9_000, outcome: "failed" }),
  // IW-normal: 4 s of idle prefill is well within 60 s; beyond the profile all the same.
  done({ model: "bloom-176b", tier: "iw-normal", instanceId: "i-a100", inputTokens: 9_000, ttftMs: 5_000 }),
  // NIW: no TTFT target; finished before its deadline.
  done({ model: "llama3.1-8b", tier: "niw", instanceId: "i-h100", inputTokens: 500, deadlineMs: 2_000 }),
];

async function collect(slo: SloTargets = DEFAULT_SLO): Promise<MetricsCollector> {
  const clock = new VirtualClock();
  const broker = new MemoryBroker(clock);
  const c = new MetricsCollector({ bus: broker.connect("metrics"), clock }, slo, true, {
    timing: perf,
    gpuOf: (id) => gpuOf[id],
  });
  await c.start();
  const client = broker.connect("fleet");
  for (const d of requests)
    client.publish(RequestDone.subject.build({ region: d.region, model: d.model }), envelope(RequestDone, d));
  await clock.advance(10);
  expect(c.finished).toBe(requests.length);
  return c;
}

describe("SLO feasibility in the simulator's report", () => {
  it("counts prompts the serving GPU cannot prefill within the target as infeasible; attainment over all and over feasible", async () => {
    const slo = sloSection(await collect());
    expect(slo["iw-fast"]).toEqual({
      attainment: 0.4, // 2 of 5
      completed: 4,
      target: "TTFT ≤ 1 s",
      infeasible: 1,
      infeasibleShare: 0.2,
      attainmentFeasible: 0.5, // 2 of the 4 feasible
    });
    expect(slo["iw-normal"]).toEqual({
      attainment: 1,
      completed: 1,
      target: "TTFT ≤ 60 s",
      infeasible: 0,
      infeasibleShare: 0,
      attainmentFeasible: 1,
    });
    expect(slo.niw).toMatchObject({ attainment: 1, infeasible: 0, attainmentFeasible: 1 });
  });

  it("takes the targets from the run's SLO settings", async () => {
    // With a 2 s IW-fast target the A100 9k prompt (1,725 ms idle) is feasible: a miss that counts.
    const slo = sloSection(await collect({ ttftMs: { "iw-fast": 2_000, "iw-normal": 60_000 } }));
    expect(slo["iw-fast"]).toMatchObject({
      target: "TTFT ≤ 2 s",
      attainment: 0.8,
      infeasible: 0,
      attainmentFeasible: 0.8,
    });
  });

  it("counts prompts beyond the measured profile per model, with how far each model was measured", async () => {
    expect(beyondProfileSection(await collect(), perf)).toEqual({
      total: 3,
      byModel: { "bloom-176b": 1, "llama2-70b": 2, "llama3.1-8b": 0 },
      measuredPromptTokens: { "bloom-176b": 8_192, "llama2-70b": 8_192, "llama3.1-8b": 8_192 },
    });
  });

  it("report.html shows attainment over all and over feasible requests and the prompts beyond the profile", async () => {
    const c = await collect();
    const html = renderReportHtml([fixture(sloSection(c), beyondProfileSection(c, perf))]);
    expect(html).toContain("<h2>SLO feasibility</h2>");
    expect(html).toMatch(
      /<td>iw-fast<\/td><td>TTFT ≤ 1 s<\/td><td class="num">40.00 %<\/td>\s*<td class="num">1 \(20.00 %\)<\/td><td class="num">50.00 %<\/td>/,
    );
    expect(html).toContain('<td>llama2-70b</td><td class="num">8,192</td><td class="num">2</td>');
  });
});

/** A report with nothing in it but the given SLO and profile-range sections. */
function fixture(slo: SimReport["slo"], beyondProfile: SimReport["beyondProfile"]): SimReport {
  const p = { p50: 0, p95: 0, p99: 0, mean: 0 };
  const per = <T>(f: () => T) =>
    Object.fromEntries(TIERS.map((t) => [t, f()])) as Record<(typeof TIERS)[number], T>;
  return {
    scenario: "hand",
    policy: "p",
    seed: 1,
    simulatedHours: 0,
    requests: { generated: 7, completed: 6, failed: 1, unfinished: 0, dropped: 1 },
    coldStarts: { held: 0, routed: 0, waitMs: { p50: 0, p99: 0, max: 0 } },
    gpuHours: {
      total: 0,
      byState: {},
      byTier: {},
      byModel: {},
      byRegion: {},
      byGpu: {},
      scalingOverhead: 0,
      spotLent: 0,
      afterWindow: 0,
    },
    costUsd: 0,
    scalingActions: {},
    slo,
    beyondProfile,
    latencyMs: per(() => ({ ttft: p, tbt: p, e2e: p })),
    ttftCdf: per(() => []),
    niw: { deadlineMisses: 0, escalated: 0, released: 0 },
    invariants: {
      servedWhileNotServing: 0,
      duplicateCompletions: 0,
      publishFailures: 0,
      handlerErrors: 0,
      rejectedMessages: 0,
    },
    timeseries: { binMinutes: 15, bins: [] },
  };
}
