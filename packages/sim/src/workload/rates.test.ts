import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveWorkload } from "./index.js";
import { drain, type SimRequest } from "./types.js";

const dir = mkdtempSync(join(tmpdir(), "sage-rates-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const count = (reqs: SimRequest[], f: (r: SimRequest) => boolean) => reqs.filter(f).length;
const spec = (name: string, fields: Record<string, unknown>) =>
  file(`${name}.json`, JSON.stringify({ kind: "rates", name, ...fields }));

// Three clients over two 10-minute bins, ServeGen's columns plus a model per client:
// a is steady (Poisson) at 2 then 6 req/s; b bursty (cv 4) at 1 req/s; c has no length data.
file(
  "rates.csv",
  [
    "client_id,window_start_s,rate_rps,cv,arrival_dist,dist_param1,dist_param2,model",
    "a,0,2,1,Gamma,1,1,llama2-70b",
    "a,600,6,1,Gamma,1,1,llama2-70b",
    "b,0,1,4,Weibull,0.3,0.4,llama3.1-8b",
    "b,600,1,4,Weibull,0.3,0.4,llama3.1-8b",
    "c,0,1,,,0,0,llama3.2-3b",
    "c,600,1,,,0,0,llama3.2-3b",
  ].join("\n"),
);
file(
  "lengths.jsonl",
  [
    { client_id: "a", window_start_s: 0, input_tokens: { "100": 1 }, output_tokens: { "10": 1 } },
    {
      client_id: "b",
      window_start_s: 0,
      input_tokens: { "1000": 0.5, "3000": 0.5 },
      output_tokens: { "50": 1 },
    },
  ]
    .map((o) => JSON.stringify(o))
    .join("\n"),
);
const base = {
  sources: [
    {
      rates: "rates.csv",
      lengths: "lengths.jsonl",
      regions: [
        { id: "eastus", weight: 3 },
        { id: "westus", weight: 1 },
      ],
    },
  ],
};
const generated = drain(resolveWorkload(spec("three", base), { seed: 2 }));
const of = (model: string) => generated.filter((r) => r.model === model);

describe("rate files", () => {
  it("generates each stream's rate bin by bin", () => {
    const a = of("llama2-70b");
    const bin0 = count(a, (r) => r.arrivalMs < 600_000);
    expect(bin0 / 1200).toBeGreaterThan(0.9);
    expect(bin0 / 1200).toBeLessThan(1.1);
    expect(count(a, (r) => r.arrivalMs >= 600_000) / 3600).toBeCloseTo(1, 1);
    expect(
      generated.every((r, i) => r.id === i && (i === 0 || r.arrivalMs >= generated[i - 1]!.arrivalMs)),
    ).toBe(true);
  });

  it("splits a stream without a region over the spec's regions by weight", () => {
    expect(count(generated, (r) => r.region === "eastus") / generated.length).toBeCloseTo(0.75, 1);
  });

  it("gives each stream its bin's burstiness: cv 4 is far more dispersed per 10 s than Poisson", () => {
    const dispersion = (reqs: SimRequest[]) => {
      const counts = new Array(120).fill(0);
      for (const r of reqs) counts[Math.floor(r.arrivalMs / 10_000)]++;
      const mean = counts.reduce((x, y) => x + y, 0) / counts.length;
      return counts.reduce((x, y) => x + (y - mean) ** 2, 0) / counts.length / mean;
    };
    expect(dispersion(of("llama3.2-3b").filter((r) => r.region === "eastus"))).toBeLessThan(2);
    expect(dispersion(of("llama3.1-8b").filter((r) => r.region === "eastus"))).toBeGreaterThan(4);
  });

  it("draws each client's lengths from its own distributions, and the pooled mixture for a client without", () => {
    expect(of("llama2-70b").every((r) => r.inputTokens === 100 && r.outputTokens === 10)).toBe(true);
    const b = of("llama3.1-8b");
    expect(count(b, (r) => r.inputTokens === 1000) / b.length).toBeCloseTo(0.5, 1);
    expect(count(b, (r) => r.inputTokens === 3000) / b.length).toBeCloseTo(0.5, 1);
    // c: a's distribution weighs 4,800 requests, b's 1,200: 80 % of prompts are 100 tokens.
    const c = of("llama3.2-3b");
    expect(count(c, (r) => r.inputTokens === 100) / c.length).toBeCloseTo(0.8, 1);
  });

  it("draws tiers from the mix (the paper's by default) and gives NIW requests their deadline", () => {
    expect(count(generated, (r) => r.tier === "iw-fast") / generated.length).toBeCloseTo(0.45, 1);
    expect(
      generated.filter((r) => r.tier === "niw").every((r) => r.deadlineMs === r.arrivalMs + 24 * 3600_000),
    ).toBe(true);
  });

  it("rescales to meanRatePerSecond and multiplies by --scale", () => {
    const rescaled = drain(resolveWorkload(spec("mean", { ...base, meanRatePerSecond: 2 }), { seed: 2 }));
    expect(rescaled.length / 2400).toBeGreaterThan(0.85);
    expect(rescaled.length / 2400).toBeLessThan(1.15);
    const doubled = drain(
      resolveWorkload(spec("mean", { ...base, meanRatePerSecond: 2 }), { seed: 2, scale: 2 }),
    );
    expect(doubled.length / rescaled.length).toBeCloseTo(2, 0);
  });

  it("reads a rate file given directly: its columns, else llama2-70b in westus", () => {
    const w = resolveWorkload(join(dir, "rates.csv"), { seed: 3 });
    expect(w.models).toEqual(["llama2-70b", "llama3.1-8b", "llama3.2-3b"]);
    expect(w.regions).toEqual(["westus"]);
    expect(w.durationMs).toBe(1_200_000);
    const plain = resolveWorkload(file("plain.csv", "window_start_s,rate_rps\n0,1\n600,1\n"), { seed: 3 });
    expect([plain.models, plain.regions]).toEqual([["llama2-70b"], ["westus"]]);
  });

  it("lets a scenario's shape name a rate file (relative to the scenario), normalised to mean 1", () => {
    file("shape.csv", "window_start_s,rate_rps\n0,1\n600,3\n1200,2\n");
    const scenario = file(
      "shaped.json",
      JSON.stringify({
        name: "shaped",
        durationHours: 0.5,
        meanRatePerSecond: 4,
        burstCv: 1,
        models: [{ id: "llama2-70b", share: 1, shape: "shape.csv", tokens: "conv" }],
        regions: [{ id: "westus", weight: 1, utcOffsetHours: 0 }],
        tierMix: { "iw-fast": 1, "iw-normal": 0, niw: 0 },
      }),
    );
    const reqs = drain(resolveWorkload(scenario, { seed: 1 }));
    const bins = [0, 1, 2].map((b) => count(reqs, (r) => Math.floor(r.arrivalMs / 600_000) === b));
    // Mean 2 → 0.5, 1.5, 1 of 4 req/s over 600 s: 1,200, 3,600, 2,400.
    expect(bins[0]! / 1200).toBeCloseTo(1, 1);
    expect(bins[1]! / 3600).toBeCloseTo(1, 1);
    expect(bins[2]! / 2400).toBeCloseTo(1, 1);
  });

  it.runIf(existsSync("/work/shared/data/servegen/language-m-small-rates.csv.gz"))(
    "generates from ServeGen's published per-client rates and lengths (m-small, 6 h at 2 req/s)",
    () => {
      const sg = "/work/shared/data/servegen/language-m-small";
      const w = resolveWorkload(
        spec("servegen", {
          sources: [{ rates: `${sg}-rates.csv.gz`, lengths: `${sg}-lengths.jsonl.gz`, model: "llama3.1-8b" }],
          durationHours: 6,
          meanRatePerSecond: 2,
        }),
        { seed: 1 },
      );
      const reqs = drain(w);
      expect(reqs.length / (2 * 6 * 3600)).toBeGreaterThan(0.8);
      expect(reqs.length / (2 * 6 * 3600)).toBeLessThan(1.2);
      const input = reqs.map((r) => r.inputTokens).sort((a, b) => a - b);
      // ServeGen's m-small prompts are short (p50 43 tokens over the week).
      expect(input[input.length >> 1]).toBeLessThan(200);
    },
  );
});

describe("rate file errors", () => {
  it.each([
    ["norate.csv", "window_start_s,rate\n0,1\n", /norate\.csv:1: rate_rps: column missing from the header/],
    [
      "neg.csv",
      "window_start_s,rate_rps\n0,1\n600,-2\n",
      /neg\.csv:3: rate_rps: expected a number ≥ 0, got '-2'/,
    ],
    [
      "grid.csv",
      "window_start_s,rate_rps,client_id\n0,1,x\n600,1,x\n250,1,y\n850,1,y\n",
      /grid\.csv:4: window_start_s: 250 is not on the 600 s bin grid/,
    ],
    [
      "dup.csv",
      "window_start_s,rate_rps\n0,1\n600,1\n600,2\n",
      /dup\.csv:4: window_start_s: a second row for window 600/,
    ],
    ["model.csv", "window_start_s,rate_rps,model\n0,1,gpt-9\n", /model\.csv:2: model: unknown model 'gpt-9'/],
    [
      "one.csv",
      "window_start_s,rate_rps\n0,1\n",
      /one\.csv: window_start_s: one window per stream: give the bin length/,
    ],
  ])("%s: names the line and column", (name, text, msg) => {
    expect(() => resolveWorkload(file(name, text), { seed: 1 })).toThrowError(msg);
  });

  it("names the source without a model, a broken length distribution, an unknown shape and a bad spec field", () => {
    file("nomodel.csv", "window_start_s,rate_rps\n0,1\n600,1\n");
    expect(() =>
      resolveWorkload(spec("nm", { sources: [{ rates: "nomodel.csv" }] }), { seed: 1 }),
    ).toThrowError(
      /rate spec nm: sources\[0\] \(nomodel\.csv\) has no model column: give the source a model/,
    );
    file(
      "badlen.jsonl",
      '{"client_id":"a","window_start_s":0,"input_tokens":{"x":1},"output_tokens":{"1":1}}\n',
    );
    expect(() =>
      resolveWorkload(spec("bl", { sources: [{ rates: "rates.csv", lengths: "badlen.jsonl" }] }), {
        seed: 1,
      }),
    ).toThrowError(/badlen\.jsonl:1: input_tokens: bad entry "x"/);
    const scenario = file(
      "badshape.json",
      JSON.stringify({
        name: "b",
        durationHours: 1,
        meanRatePerSecond: 1,
        models: [{ id: "llama2-70b", share: 1, shape: "m-huge", tokens: "conv" }],
        regions: [{ id: "westus", weight: 1, utcOffsetHours: 0 }],
        tierMix: { "iw-fast": 1, "iw-normal": 0, niw: 0 },
      }),
    );
    expect(() => resolveWorkload(scenario, { seed: 1 })).toThrowError(
      /shape '.*m-huge': not a built-in profile \(m-large, m-mid, m-small\) and no such rate file/,
    );
    expect(() =>
      resolveWorkload(spec("bad", { sources: [{ rates: "rates.csv", model: "gpt-9" }] }), { seed: 1 }),
    ).toThrowError(/rate spec .*bad\.json: sources\.0\.model: unknown model/);
  });
});
