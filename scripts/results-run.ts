// Runs the policy comparison (paper-week) and the sensitivity studies (day), writing raw reports to
// docs/results/*.json. `npm run results` runs this, then scripts/results-render.ts.
//   tsx scripts/results-run.ts [main|sensitivity|all] [--scale x] [--scenario name]
import { writeFileSync } from "node:fs";
import { runSimulation, type SimOptions } from "@sageserve/sim";

const H = 3600_000;
const args = process.argv.slice(2);
const what = args.find((a) => !a.startsWith("--")) ?? "all";
const opt = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const scale = Number(opt("scale") ?? 1);
const out = new URL("../docs/results/", import.meta.url);

/** The configurations compared. "best" is our best configuration so far (docs/results.md says why). */
export const CONFIGS: Record<string, Partial<SimOptions> & { policy: string }> = {
  "siloed-reactive": { policy: "siloed-reactive" },
  "unified-reactive": { policy: "unified-reactive" },
  "lt-i": { policy: "lt-i" },
  "lt-u": { policy: "lt-u" },
  "lt-ua": { policy: "lt-ua" },
  // LT-UA whose reactive fallback scales down only when the instances left stay under 40 % KV
  // utilisation, at most every 5 minutes (no lend-to-spot / reclaim flip-flops on bursty endpoints).
  best: {
    policy: "lt-ua",
    regionAgent: { reactive: { scaleDownGuard: true, targetUtilization: 0.4, scaleDownCooldownMs: 300_000 } },
  },
};

const SENSITIVITY: Record<string, Partial<SimOptions>> = {
  baseline: {},
  "forecast +20 %": { forecastBias: 1.2 },
  "forecast −20 %": { forecastBias: 0.8 },
  "3× burst, westus, 30 min": {
    burst: { region: "westus", startMs: 14 * H, durationMs: 30 * 60_000, factor: 3 },
  },
  "eastus outage, 1 h": { outages: [{ region: "eastus", startMs: 12 * H, endMs: 13 * H }] },
  "supply: 10 VMs per region and GPU type": {
    supply: Object.fromEntries(["eastus", "centralus", "westus"].map((r) => [r, { h100: 10, a100: 10 }])),
  },
};

async function run(
  scenario: string,
  name: string,
  cfg: Partial<SimOptions> & { policy: string },
  extra = {},
) {
  const t = Date.now();
  const r = await runSimulation({
    scenario,
    seed: 1,
    validate: false,
    ...(scale !== 1 ? { scale } : {}),
    ...cfg,
    ...extra,
  } as SimOptions);
  const wallS = (Date.now() - t) / 1000;
  console.log(
    `${scenario} ${name}: ${r.report.gpuHours.total.toFixed(0)} GPU-h, IW-fast SLO ${(100 * r.report.slo["iw-fast"].attainment).toFixed(2)} %, ${wallS.toFixed(0)} s`,
  );
  return { name, report: r.report, run: r.run, wallS };
}

if (what === "main" || what === "all") {
  const scenario = opt("scenario") ?? "paper-week";
  const runs = [];
  for (const [name, cfg] of Object.entries(CONFIGS)) runs.push(await run(scenario, name, cfg));
  writeFileSync(new URL("main.json", out), JSON.stringify({ scenario, scale, seed: 1, runs }, null, 1));
}
// The same comparison where load, not the minimum-instance floor, decides: `day` at 10× the rate.
// `scaled-a` / `scaled-b` split the configurations so two processes can share a 2-core machine.
if (what.startsWith("scaled") || what === "all") {
  const names = Object.keys(CONFIGS);
  const part = what === "scaled-a" ? names.slice(0, 3) : what === "scaled-b" ? names.slice(3) : names;
  const runs = [];
  for (const name of part) runs.push(await run("day", name, CONFIGS[name]!, { scale: 10 }));
  const file = what === "scaled-a" || what === "scaled-b" ? `${what}.json` : "scaled.json";
  writeFileSync(new URL(file, out), JSON.stringify({ scenario: "day", scale: 10, seed: 1, runs }, null, 1));
}
if (what === "sensitivity" || what === "all") {
  const scenario = opt("scenario") ?? "day";
  const runs = [];
  for (const [variant, extra] of Object.entries(SENSITIVITY)) {
    for (const name of ["siloed-reactive", "unified-reactive", "lt-ua", "best"]) {
      if (variant.startsWith("forecast") && !CONFIGS[name]!.policy.startsWith("lt")) continue; // no forecast in reactive policies
      const r = await run(scenario, name, CONFIGS[name]!, extra);
      // The tables need the summary, not the 15-minute series (keeps the stored JSON small).
      const { timeseries: _series, ...report } = r.report;
      runs.push({ variant, ...r, report });
    }
  }
  writeFileSync(
    new URL("sensitivity.json", out),
    JSON.stringify({ scenario, scale, seed: 1, runs }, null, 1),
  );
}
