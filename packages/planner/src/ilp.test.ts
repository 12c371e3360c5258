import { describe, expect, it } from "vitest";
import { randomProblem } from "../../../bench/planner-problem.js";
import { blockStructure, improveByBlocks, lagrangianBound, type SubMip } from "./decompose.js";
import { solvePlan } from "./ilp.js";
import { solve } from "./lp.js";
import { isFeasible, type LpModel, objective, violation } from "./lp-model.js";
import { buildPlanningModel } from "./planning-model.js";
import { type PlanningSnapshotInput, PlanningSnapshotSchema } from "./snapshot.js";

const snap = (s: PlanningSnapshotInput) => PlanningSnapshotSchema.parse(s);
const base = {
  capacity: { m: { h100: 1000, a100: 400 } },
  gpuTypes: [
    { id: "h100", pricePerHour: 98 },
    { id: "a100", pricePerHour: 33 },
  ],
};

describe("LP solvers", () => {
  const knapsack: LpModel = {
    vars: [
      { name: "a", cost: -5, lb: 0, ub: 10, integer: true },
      { name: "b", cost: -4, lb: 0, ub: 10, integer: true },
    ],
    rows: [
      {
        name: "w",
        terms: [
          [0, 6],
          [1, 4],
        ],
        lo: Number.NEGATIVE_INFINITY,
        hi: 24,
      },
    ],
  };
  it.each(["highs", "jslp"] as const)("%s solves a small MIP to its proven optimum (-24)", async (solver) => {
    const r = await solve(knapsack, { solver });
    expect(r.status).toBe("optimal");
    expect(r.objective).toBeCloseTo(-24, 6); // b = 6 → -24
  });

  it("HiGHS reports the gap it proved, solves pure LPs and detects infeasible MIPs", async () => {
    const r = await solve(knapsack, { solver: "highs", gap: 0.01 });
    expect(r.gap).toBeDefined();
    expect(r.gap!).toBeLessThanOrEqual(0.01);
    expect(r.bound!).toBeLessThanOrEqual(r.objective + 1e-9);
    const lp = await solve(
      { vars: knapsack.vars.map((v) => ({ ...v, integer: false })), rows: knapsack.rows },
      { solver: "highs" },
    );
    expect(lp.status).toBe("optimal");
    expect(lp.objective).toBeCloseTo(-24, 6); // b has the better value per weight and fills the knapsack
    expect(lp.gap).toBe(0);
    const infeasible: LpModel = {
      vars: [{ name: "a", cost: 1, lb: 0, ub: 10, integer: true }],
      rows: [{ name: "odd", terms: [[0, 2]], lo: 3, hi: 3 }],
    };
    expect((await solve(infeasible, { solver: "highs" })).status).toBe("infeasible");
  });
});

describe("capacity plan ILP", () => {
  it("matches brute force on tiny per-region instances", async () => {
    for (const [demand, supplyH, supplyA] of [
      [2500, 3, 5],
      [900, 1, 4],
      [4200, 2, 8],
      [100, 0, 3],
    ] as const) {
      const s = snap({
        ...base,
        supply: { r1: { h100: supplyH, a100: supplyA } },
        demand: [{ model: "m", region: "r1", iwTokensPerSecond: demand }],
        config: {
          headroom: 0.2,
          niwShare: 0,
          minInstances: 0,
          bootCost: 20,
          swapCost: 8,
          reclaimCost: 2,
          scaleDownCost: 1,
          crossRegionCost: 0,
          unservedPenalty: 10,
        },
      });
      // Brute force over every (h100, a100) count within supply.
      let best = Number.POSITIVE_INFINITY;
      for (let h = 0; h <= supplyH; h++) {
        for (let a = 0; a <= supplyA; a++) {
          if (1000 * h + 400 * a < 1.2 * demand) continue;
          best = Math.min(best, 98 * h + 33 * a + 20 * (h + a));
        }
      }
      const plan = await solvePlan(s);
      expect(plan.status).toBe("optimal");
      expect(plan.objective).toBeCloseTo(best, 4);
      expect(plan.maxViolation).toBeLessThanOrEqual(1e-6);
    }
  });

  it("adds one total row per model that does not change the optimum", async () => {
    const s = snap({
      ...base,
      capacity: { m: { h100: 1000, a100: 400 }, n: { h100: 700, a100: 250 } },
      supply: { r1: { h100: 3, a100: 6 }, r2: { h100: 2, a100: 5 }, r3: { h100: 1, a100: 9 } },
      demand: [
        { model: "m", region: "r1", iwTokensPerSecond: 2600, niwTokensPerSecond: 900 },
        { model: "m", region: "r2", iwTokensPerSecond: 1300 },
        { model: "n", region: "r2", iwTokensPerSecond: 900 },
        { model: "n", region: "r3", iwTokensPerSecond: 2100, niwTokensPerSecond: 400 },
      ],
      current: [{ model: "m", region: "r1", gpu: "a100", instances: 3, spot: 1 }],
      routes: { r1: ["r2"], r2: ["r1", "r3"], r3: ["r2"] },
    });
    const { model } = buildPlanningModel(s);
    const totals = model.rows.filter((r) => r.name.startsWith("total["));
    expect(totals.map((r) => r.name)).toEqual(["total[m]", "total[n]"]);
    const without: LpModel = { vars: model.vars, rows: model.rows.filter((r) => !totals.includes(r)) };
    const a = await solve(model, { solver: "highs", gap: 0 });
    const b = await solve(without, { solver: "highs", gap: 0 });
    expect(a.status).toBe("optimal");
    expect(b.status).toBe("optimal");
    expect(a.objective).toBeCloseTo(b.objective, 6);
    expect(isFeasible(model, b.values)).toBe(true); // the optimum without the rows satisfies them
  });

  it("routes interactive demand across regions when one region is short of GPUs", async () => {
    const common = {
      ...base,
      supply: { east: { h100: 1, a100: 0 }, west: { h100: 6, a100: 0 } },
      demand: [
        { model: "m", region: "east", iwTokensPerSecond: 3000 },
        { model: "m", region: "west", iwTokensPerSecond: 500 },
      ],
    };
    const local = await solvePlan(snap(common));
    expect(local.status).toBe("relaxed");
    expect(local.notes.join("\n")).toMatch(/GPU supply in east short by \d+ h100 VMs/);
    const routed = await solvePlan(snap({ ...common, routes: { east: ["west"] } }));
    expect(routed.status).toBe("optimal");
    expect(routed.unserved).toEqual([]);
    const toWest = routed.routing.find((r) => r.from === "east" && r.to === "west");
    expect(toWest?.fraction).toBeGreaterThan(0.5);
  });

  it("prefers warm migration (a spot VM of another model) over booting a new VM", async () => {
    const s = snap({
      capacity: { a: { h100: 1000 }, b: { h100: 1000 } },
      gpuTypes: [{ id: "h100", pricePerHour: 98 }],
      supply: { r: { h100: 10 } },
      demand: [{ model: "a", region: "r", iwTokensPerSecond: 3000 }],
      current: [
        { model: "a", region: "r", gpu: "h100", instances: 2 },
        { model: "b", region: "r", gpu: "h100", instances: 0, spot: 3 },
      ],
      config: { minInstances: 0 },
    });
    const plan = await solvePlan(s);
    const a = plan.targets.find((t) => t.model === "a")!;
    expect(a.instances).toBe(4); // 1.2 × 3000 / 1000 → 4
    expect(a.swap).toBe(2);
    expect(a.boot).toBe(0);
  });

  it("reports infeasibility with its reason and still publishes a plan", async () => {
    const s = snap({
      ...base,
      supply: { r1: { h100: 2, a100: 0 } },
      demand: [{ model: "m", region: "r1", iwTokensPerSecond: 10_000 }],
    });
    const plan = await solvePlan(s);
    expect(plan.status).toBe("relaxed");
    expect(plan.targets[0]).toMatchObject({ instances: 2 });
    expect(plan.unserved[0]!.tokensPerSecond).toBeGreaterThan(9_000);
    expect(plan.notes[0]).toMatch(
      /demand for m in r1 exceeds capacity by \d+ tokens\/s: GPU supply in r1 short by 10 h100 VMs/,
    );
  });

  it("keeps the minimum instances per endpoint and scales down to spot when demand falls", async () => {
    const plan = await solvePlan(
      snap({
        ...base,
        supply: { r1: { h100: 8, a100: 0 } },
        demand: [{ model: "m", region: "r1", iwTokensPerSecond: 100 }],
        current: [{ model: "m", region: "r1", gpu: "h100", instances: 6 }],
      }),
    );
    expect(plan.targets).toEqual([
      expect.objectContaining({ model: "m", gpu: "h100", instances: 2, delta: -4 }),
    ]);
  });

  it("names the model's own minimum when supply cannot keep it", async () => {
    const plan = await solvePlan(
      snap({
        ...base,
        supply: { r1: { h100: 1, a100: 0 } },
        demand: [{ model: "m", region: "r1", iwTokensPerSecond: 10 }],
        current: [],
        config: { minInstances: 2, minInstancesByModel: { m: 3 } },
      }),
    );
    expect(plan.notes.join("\n")).toMatch(
      /m in r1 kept 2 below the minimum of 3 instances: no GPU supply left/,
    );
  });
});

/** Seeded problems of bench/planner.ts (integer instances per model × region × GPU type, routing, supply). */
const seeded = (M: number, R: number, G: number, seed: number) => snap(randomProblem(M, R, G, seed));

/** The decomposition's solver port on the package's own solver, every block MIP solved to optimality. */
const exactBlocks: SubMip = async (sub, o) => {
  const r = await solve(sub, { solver: "highs", gap: 0 });
  if (r.status !== "optimal") return undefined;
  return { bound: r.bound ?? r.objective, ...(o.boundOnly ? {} : { values: r.values }) };
};

/**
 * "Keep the current allocation (within supply), route nothing": a feasible plan that pays for unserved demand
 * and missing minimums.
 */
function keepCurrent(s: ReturnType<typeof seeded>): number[] {
  const { model, index } = buildPlanningModel(s);
  const x = model.vars.map(() => 0);
  const supplyLeft = new Map<string, number>();
  for (const c of s.current) {
    const k = `${c.model}|${c.region}|${c.gpu}`;
    const n = index.n.get(k);
    if (n === undefined) continue;
    const pool = `${c.region}|${c.gpu}`;
    const keep = Math.min(c.instances, supplyLeft.get(pool) ?? s.supply[c.region]?.[c.gpu] ?? 0);
    supplyLeft.set(pool, (supplyLeft.get(pool) ?? s.supply[c.region]?.[c.gpu] ?? 0) - keep);
    x[n] = keep;
    x[model.vars.findIndex((v) => v.name === `down[${k}]`)] = c.instances - keep;
  }
  for (const [k, i] of index.x) {
    const [, src, dst] = k.split("|");
    if (src === dst) x[i] = 1;
  }
  for (const [k, i] of [...index.u, ...index.minSlack]) {
    const row = model.rows.find((r) => r.name.endsWith(`[${k}]`) && r.terms.some(([j]) => j === i))!;
    const lhs = row.terms.reduce((a, [j, c]) => (j === i ? a : a + c * x[j]!), 0);
    x[i] = Math.max(0, row.lo - lhs);
  }
  return x;
}

describe("decomposition by model (Lagrangian bound, block descent)", () => {
  it("finds one block per model, coupled only by the supply and spot rows", () => {
    const s = seeded(4, 3, 2, 1);
    const { model, models } = buildPlanningModel(s);
    const bl = blockStructure(model)!;
    expect(bl.vars).toHaveLength(models.length);
    expect(
      bl.coupling.every((j) => /^(supply|spot)\[/.test(model.rows[j]!.name)),
      "coupling rows are GPU supply and spot pools",
    ).toBe(true);
    expect(bl.rows.flat().length + bl.coupling.length).toBe(model.rows.length);
  });

  // Seed 3 is short of GPUs (unserved demand), seed 4 is not.
  it.each([3, 4])(
    "(4,3,2) seed %i: the Lagrangian bound lies between the LP bound and the optimum",
    async (seed) => {
      const { model } = buildPlanningModel(seeded(4, 3, 2, seed));
      const bl = blockStructure(model)!;
      const optimum = (await solve(model, { solver: "highs", gap: 0 })).objective;
      const lp = await solve(
        { ...model, vars: model.vars.map((v) => ({ ...v, integer: false })) },
        { solver: "highs" },
      );
      const withDuals = await lagrangianBound(model, bl, lp.rowDuals!, exactBlocks, { nodesPerBlock: 1e6 });
      expect(withDuals!).toBeGreaterThanOrEqual(lp.objective - 1e-6 * Math.abs(lp.objective));
      expect(withDuals!).toBeLessThanOrEqual(optimum + 1e-6 * Math.abs(optimum));
      // Any prices are valid once clipped to their rows' sign — including none, and wrong-signed ones.
      const noPrices = await lagrangianBound(model, bl, [], exactBlocks, { nodesPerBlock: 1e6 });
      const wrongSigns = await lagrangianBound(
        model,
        bl,
        lp.rowDuals!.map((y) => -y),
        exactBlocks,
        {
          nodesPerBlock: 1e6,
        },
      );
      expect(noPrices!).toBeLessThanOrEqual(optimum + 1e-6 * Math.abs(optimum));
      expect(wrongSigns!).toBeLessThanOrEqual(optimum + 1e-6 * Math.abs(optimum));
    },
  );

  // Seeds whose supply covers all demand (seed 3 is short of GPUs: there a plan trades supply between models,
  // which one block at a time cannot do — the full MIP after the block stage can).
  it.each([1, 4])(
    "(4,3,2) seed %i: block descent from 'keep the current allocation' returns a verified, near-optimal plan",
    async (seed) => {
      const s = seeded(4, 3, 2, seed);
      const { model } = buildPlanningModel(s);
      const start = keepCurrent(s);
      expect(isFeasible(model, start)).toBe(true);
      const optimum = (await solve(model, { solver: "highs", gap: 0 })).objective;
      const r = await improveByBlocks(model, blockStructure(model)!, start, exactBlocks, {
        nodesPerBlock: 1e6,
        maxPasses: 5,
        stop: () => false,
      });
      expect(violation(model, r.values).max).toBeLessThanOrEqual(1e-6);
      expect(r.objective).toBeCloseTo(objective(model, r.values), 6);
      expect(r.objective).toBeLessThan(objective(model, start));
      expect(r.objective).toBeGreaterThanOrEqual(optimum - 1e-6 * Math.abs(optimum));
      // It recovers nearly all of the penalised start's excess cost.
      expect((r.objective - optimum) / (objective(model, start) - optimum)).toBeLessThan(0.01);
    },
  );

  it("proves a mid-size plan (10,5,3) within 1 % against the Lagrangian bound, above the LP's", async () => {
    const s = seeded(10, 5, 3, 2);
    const { model } = buildPlanningModel(s);
    const lp = await solve(
      { ...model, vars: model.vars.map((v) => ({ ...v, integer: false })) },
      { solver: "highs" },
    );
    const r = await solve(model, { gap: 0.01 });
    expect(r.status).toBe("optimal");
    expect(r.message).toMatch(/Lagrangian bound/);
    expect(r.bound!).toBeGreaterThan(lp.objective);
    expect(r.gap!).toBeLessThanOrEqual(0.01);
    expect(isFeasible(model, r.values)).toBe(true);
  });
});

describe("work budget and deterministic solves", () => {
  it("gives identical plans for the same snapshot whatever the wall-clock limit", async () => {
    const s = seeded(10, 5, 3, 2);
    const budget = { gap: 0.001, deterministic: true, maxNodes: 150 };
    const a = await solvePlan(s, { ...budget, timeLimitMs: 60_000 });
    const b = await solvePlan(s, { ...budget, timeLimitMs: 600_000 });
    expect(a.maxViolation).toBeLessThanOrEqual(1e-5);
    expect(a.work!.nodes).toBeGreaterThan(0);
    expect(a.work!.nodes).toBeLessThanOrEqual(150);
    expect(b.targets).toEqual(a.targets);
    expect(b.routing).toEqual(a.routing);
    expect(b.objective).toBe(a.objective);
    expect(b.work).toEqual(a.work);
  });

  it("stops a tiny node budget with a verified plan, and a tiny iteration budget with the reason", async () => {
    const s = seeded(10, 5, 3, 2);
    const nodes = await solvePlan(s, { gap: 0.0001, deterministic: true, maxNodes: 1 });
    expect(["optimal", "feasible"]).toContain(nodes.status);
    expect(nodes.maxViolation).toBeLessThanOrEqual(1e-5);
    expect(nodes.work!.nodes).toBeLessThanOrEqual(1);
    const iterations = await solvePlan(s, { deterministic: true, maxIterations: 10 });
    expect(iterations.status).toBe("timeout");
    expect(iterations.notes.join("\n")).toMatch(/work budget used up .* keeping the current allocation/);
    expect(iterations.targets).toEqual(
      s.current.map((c) => expect.objectContaining({ model: c.model, instances: c.instances, delta: 0 })),
    );
  });
});
