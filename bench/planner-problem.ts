import type { PlanningSnapshotInput } from "@sageserve/planner";
import { createRng } from "@sageserve/runtime";

const GPUS = [
  { id: "l4", pricePerHour: 6.4, speed: 0.25 },
  { id: "a100", pricePerHour: 32.8, speed: 1 },
  { id: "h100", pricePerHour: 98.3, speed: 2.2 },
  { id: "h200", pricePerHour: 110, speed: 2.8 },
];

/** A seeded random planning problem of M models × R regions × G GPU types (bench/planner.ts). */
export function randomProblem(M: number, R: number, G: number, seed: number): PlanningSnapshotInput {
  const rng = createRng(seed, `plan-${M}-${R}-${G}`);
  const gpus = GPUS.slice(0, G);
  const pos = Array.from({ length: R }, () => [rng.next(), rng.next()] as const);
  const regions = pos.map((_, i) => `r${i}`);
  const models = Array.from({ length: M }, (_, i) => `m${i}`);
  const capacity: Record<string, Record<string, number>> = {};
  for (const m of models) {
    const size = 0.5 + rng.next() * 3;
    capacity[m] = Object.fromEntries(gpus.map((g) => [g.id, Math.round((4000 * g.speed) / size)]));
  }
  const demand = models.flatMap((m, mi) =>
    regions.flatMap((r) => {
      if (rng.next() < 0.15) return [];
      const zipf = 1 / (mi + 1);
      return [
        {
          model: m,
          region: r,
          iwTokensPerSecond: Math.round(40_000 * zipf * (0.2 + rng.next())),
          niwTokensPerSecond: Math.round(8_000 * zipf * rng.next()),
        },
      ];
    }),
  );
  // Supply: 1.0–1.6× the VMs of serving everything locally on the mid GPU type.
  const supply: Record<string, Record<string, number>> = {};
  for (const r of regions) {
    const need = demand
      .filter((d) => d.region === r)
      .reduce(
        (a, d) =>
          a + Math.ceil((1.2 * d.iwTokensPerSecond) / capacity[d.model]![gpus[Math.min(1, G - 1)]!.id]!) + 2,
        0,
      );
    supply[r] = Object.fromEntries(
      gpus.map((g) => [g.id, Math.ceil(((1 + 0.6 * rng.next()) * need) / G) + 2]),
    );
  }
  const current = demand.map((d) => ({
    model: d.model,
    region: d.region,
    gpu: rng.pick(gpus).id,
    instances: Math.max(
      1,
      Math.round(
        ((1.2 * d.iwTokensPerSecond) / capacity[d.model]![gpus[0]!.id]!) * 0.3 * (0.8 + 0.4 * rng.next()),
      ),
    ),
    spot: rng.int(0, 2),
  }));
  const routes = Object.fromEntries(
    regions.map((r, i) => {
      const near = regions
        .map((q, j) => ({ q, d: (pos[i]![0] - pos[j]![0]) ** 2 + (pos[i]![1] - pos[j]![1]) ** 2 }))
        .filter((x) => x.q !== r)
        .sort((a, b) => a.d - b.d)
        .slice(0, 3)
        .map((x) => x.q);
      return [r, near];
    }),
  );
  return {
    capacity,
    gpuTypes: gpus.map(({ id, pricePerHour }) => ({ id, pricePerHour })),
    supply,
    demand,
    current,
    routes,
  };
}
