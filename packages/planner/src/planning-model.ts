/**
 * The capacity plan's MILP, built from a planning snapshot one constraint family at a time: how each
 * (model, region, GPU type)'s instances arrive and leave, the spot and GPU supply of each region and GPU
 * type, the routing of interactive demand, and the capacity rows that cover demand. Separate from
 * `ilp.ts`, which solves the model and reads the plan back. The families are added in a fixed order,
 * which fixes the order of the model's variables and rows (and so the solver's path).
 */
import { pairKey, tripleKey } from "@sageserve/protocol";
import type { LpModel } from "./lp-model.js";
import type { PlanningSnapshot } from "./snapshot.js";

/** Variable indices of the plan's decisions, by "model|region|gpu", "model|src|dst" (x) or "model|region" (u, minSlack). */
export interface PlanningIndex {
  n: Map<string, number>;
  rc: Map<string, number>;
  sw: Map<string, number>;
  bt: Map<string, number>;
  x: Map<string, number>;
  u: Map<string, number>;
  minSlack: Map<string, number>;
}

type Terms = [number, number][];

/** Current instances and spot VMs per "model|region|gpu" (rows for the same key are summed). */
export function currentAllocation(s: PlanningSnapshot): Map<string, { instances: number; spot: number }> {
  const cur = new Map<string, { instances: number; spot: number }>();
  for (const c of s.current) {
    const k = tripleKey(c.model, c.region, c.gpu);
    const e = cur.get(k) ?? { instances: 0, spot: 0 };
    e.instances += c.instances;
    e.spot += c.spot;
    cur.set(k, e);
  }
  return cur;
}

/** The snapshot as the constraint families read it, and the model and index they append to. */
interface ModelBuild {
  s: PlanningSnapshot;
  cfg: PlanningSnapshot["config"];
  models: string[];
  regions: string[];
  gpus: string[];
  cur: Map<string, { instances: number; spot: number }>;
  model: LpModel;
  /** The block (model) of each variable: only the supply and spot rows couple models (decompose.ts). */
  blocks: number[];
  blockOf: Map<string, number>;
  index: PlanningIndex;
}

export function buildPlanningModel(s: PlanningSnapshot): {
  model: LpModel;
  index: PlanningIndex;
  models: string[];
  regions: string[];
} {
  const regions = Object.keys(s.supply).sort();
  const models = [...new Set([...s.demand.map((d) => d.model), ...s.current.map((c) => c.model)])]
    .filter((m) => s.capacity[m])
    .sort();
  const { iw, niwNeedOf } = demandBySeries(s);
  const blocks: number[] = [];
  const b: ModelBuild = {
    s,
    cfg: s.config,
    models,
    regions,
    gpus: s.gpuTypes.map((g) => g.id),
    cur: currentAllocation(s),
    model: { vars: [], rows: [], blocks },
    blocks,
    blockOf: new Map(models.map((m, i) => [m, i])),
    index: {
      n: new Map(),
      rc: new Map(),
      sw: new Map(),
      bt: new Map(),
      x: new Map(),
      u: new Map(),
      minSlack: new Map(),
    },
  };
  addInstanceRows(b);
  for (const r of regions) {
    for (const g of b.gpus) {
      addSpotRow(b, r, g);
      addSupplyRow(b, r, g);
    }
  }
  const demandIn = addRoutingRows(b, iw);
  for (const m of models) addCapacityRows(b, m, iw, niwNeedOf, demandIn);
  return { model: b.model, index: b.index, models, regions };
}

/**
 * Interactive demand and the NIW capacity each (model, region) needs this window: the deadline-driven
 * rate when the backlog is known, else niwShare of the NIW forecast (the reference's flat buffer).
 */
function demandBySeries(s: PlanningSnapshot): { iw: Map<string, number>; niwNeedOf: Map<string, number> } {
  const iw = new Map<string, number>();
  const niwNeedOf = new Map<string, number>();
  for (const d of s.demand) {
    const k = pairKey(d.model, d.region);
    iw.set(k, (iw.get(k) ?? 0) + d.iwTokensPerSecond);
    const need = d.niwRequiredTokensPerSecond ?? s.config.niwShare * d.niwTokensPerSecond;
    niwNeedOf.set(k, (niwNeedOf.get(k) ?? 0) + need);
  }
  return { iw, niwNeedOf };
}

/** A variable of model `m`'s block (lower bound 0); its index. */
function addVar(b: ModelBuild, m: string, name: string, cost: number, ub: number, integer = false): number {
  b.model.vars.push({ name, cost, lb: 0, ub, integer });
  b.blocks.push(b.blockOf.get(m)!);
  return b.model.vars.length - 1;
}

/**
 * Instances of each (model, region, GPU type) the model runs on and the region has: the integer count n,
 * how new ones arrive (reclaim a spot VM of the model, swap another model's spot VM, boot a VM) and how
 * many are taken down, tied to the current allocation.
 */
function addInstanceRows(b: ModelBuild): void {
  const { s, cfg, index } = b;
  const price = new Map(s.gpuTypes.map((g) => [g.id, g.pricePerHour]));
  for (const m of b.models) {
    for (const r of b.regions) {
      for (const g of b.gpus) {
        const cap = s.capacity[m]?.[g];
        const supply = s.supply[r]?.[g] ?? 0;
        if (!cap || supply <= 0) continue;
        const k = tripleKey(m, r, g);
        const c = b.cur.get(k) ?? { instances: 0, spot: 0 };
        const n = addVar(b, m, `n[${k}]`, price.get(g) ?? 0, supply, true);
        const rc = addVar(b, m, `reclaim[${k}]`, cfg.reclaimCost, c.spot);
        const sw = addVar(b, m, `swap[${k}]`, cfg.swapCost, supply);
        const bt = addVar(b, m, `boot[${k}]`, cfg.bootCost, supply);
        const dn = addVar(b, m, `down[${k}]`, cfg.scaleDownCost, Number.POSITIVE_INFINITY);
        index.n.set(k, n);
        index.rc.set(k, rc);
        index.sw.set(k, sw);
        index.bt.set(k, bt);
        // New instances come from somewhere: n − reclaim − swap − boot ≤ current.
        b.model.rows.push({
          name: `arrive[${k}]`,
          terms: [
            [n, 1],
            [rc, -1],
            [sw, -1],
            [bt, -1],
          ],
          lo: Number.NEGATIVE_INFINITY,
          hi: c.instances,
        });
        // Instances taken down are counted: n + down ≥ current.
        b.model.rows.push({
          name: `leave[${k}]`,
          terms: [
            [n, 1],
            [dn, 1],
          ],
          lo: c.instances,
          hi: Number.POSITIVE_INFINITY,
        });
      }
    }
  }
}

/** Spot VMs of a region and GPU type feed both reclaims (own model) and swaps (any model). */
function addSpotRow(b: ModelBuild, r: string, g: string): void {
  const spot = b.models.reduce((a, m) => a + (b.cur.get(tripleKey(m, r, g))?.spot ?? 0), 0);
  const terms: Terms = [];
  for (const m of b.models) {
    const k = tripleKey(m, r, g);
    if (b.index.rc.has(k)) terms.push([b.index.rc.get(k)!, 1], [b.index.sw.get(k)!, 1]);
  }
  if (terms.length)
    b.model.rows.push({ name: `spot[${r}|${g}]`, terms, lo: Number.NEGATIVE_INFINITY, hi: spot });
}

/** All models' instances of a region and GPU type fit its supply of VMs. */
function addSupplyRow(b: ModelBuild, r: string, g: string): void {
  const nTerms: Terms = b.models.flatMap((m) =>
    b.index.n.has(tripleKey(m, r, g)) ? [[b.index.n.get(tripleKey(m, r, g))!, 1] as [number, number]] : [],
  );
  if (nTerms.length)
    b.model.rows.push({
      name: `supply[${r}|${g}]`,
      terms: nTerms,
      lo: Number.NEGATIVE_INFINITY,
      hi: b.s.supply[r]?.[g] ?? 0,
    });
}

/**
 * Routing of interactive demand: Σ_d x[m,s,d] = 1 over the allowed serving regions. Returns the
 * capacity-row terms each (model, serving region) gets from the demand routed to it.
 */
function addRoutingRows(b: ModelBuild, iw: ReadonlyMap<string, number>): Map<string, Terms> {
  const { cfg, regions } = b;
  const demandIn = new Map<string, Terms>(); // capacity-row terms per (m, d)
  for (const m of b.models) {
    for (const src of regions) {
      const d = iw.get(pairKey(m, src)) ?? 0;
      if (d <= 0) continue;
      const targets = [src, ...(b.s.routes[src] ?? []).filter((t) => t !== src && regions.includes(t))];
      const terms: Terms = [];
      for (const dst of targets) {
        const x = addVar(b, m, `x[${m}|${src}>${dst}]`, dst === src ? 0 : cfg.crossRegionCost * d, 1);
        b.index.x.set(tripleKey(m, src, dst), x);
        terms.push([x, 1]);
        const list = demandIn.get(pairKey(m, dst)) ?? [];
        list.push([x, -(1 + cfg.headroom) * d]);
        demandIn.set(pairKey(m, dst), list);
      }
      b.model.rows.push({ name: `route[${m}|${src}]`, terms, lo: 1, hi: 1 });
    }
  }
  return demandIn;
}

/**
 * Model `m`'s capacity rows: per region where it has demand or instances, instances (+ unserved) cover the
 * interactive demand routed there and the batch need, and reach the minimum instances; then one row for
 * the model's total.
 */
function addCapacityRows(
  b: ModelBuild,
  m: string,
  iw: ReadonlyMap<string, number>,
  niwNeedOf: ReadonlyMap<string, number>,
  demandIn: ReadonlyMap<string, Terms>,
): void {
  const { cfg, regions, gpus } = b;
  // Σ_r capacity[m|r] + Σ_src (1+headroom)·d[m,src]·route[m|src]: the routing fractions cancel, leaving
  // "all instances of m (+ unserved) cover all of m's demand" with a constant right-hand side. The LP
  // relaxation implies it, but HiGHS derives far stronger cuts from it than from the per-region rows
  // (scratch/highs-api.ts, HiGHS MIP with a 1 % target: (4,3,2) seed 2 proves it at the root instead of
  // after 454 nodes).
  const totalTerms: Terms = [];
  let totalLo = 0;
  for (const src of regions) {
    const d = iw.get(pairKey(m, src)) ?? 0;
    if (d > 0) totalLo += (1 + cfg.headroom) * d;
  }
  for (const r of regions) {
    const capTerms: Terms = [];
    for (const g of gpus) {
      const n = b.index.n.get(tripleKey(m, r, g));
      if (n !== undefined) capTerms.push([n, b.s.capacity[m]![g]!]);
    }
    const need = demandIn.get(pairKey(m, r)) ?? [];
    const niwNeed = niwNeedOf.get(pairKey(m, r)) ?? 0;
    const present =
      need.length > 0 || niwNeed > 0 || gpus.some((g) => (b.cur.get(tripleKey(m, r, g))?.instances ?? 0) > 0);
    if (!present) continue;
    const u = addVar(b, m, `unserved[${m}|${r}]`, cfg.unservedPenalty, Number.POSITIVE_INFINITY);
    b.index.u.set(pairKey(m, r), u);
    totalTerms.push(...capTerms, [u, 1]);
    totalLo += niwNeed;
    b.model.rows.push({
      name: `capacity[${m}|${r}]`,
      terms: [...capTerms, ...need, [u, 1]],
      lo: niwNeed,
      hi: Number.POSITIVE_INFINITY,
    });
    addMinimumRow(b, m, r, capTerms);
  }
  if (totalTerms.some(([i]) => b.model.vars[i]!.integer))
    b.model.rows.push({ name: `total[${m}]`, terms: totalTerms, lo: totalLo, hi: Number.POSITIVE_INFINITY });
}

/** At least the minimum instances of `m` in `r` (short of it only at the unserved penalty per instance's capacity). */
function addMinimumRow(b: ModelBuild, m: string, r: string, capTerms: Terms): void {
  const { cfg } = b;
  const minN = cfg.minInstancesByModel?.[m] ?? cfg.minInstances;
  if (minN > 0) {
    const slack = addVar(b, m, `belowMin[${m}|${r}]`, cfg.unservedPenalty * maxCapacity(b.s, m), minN);
    b.index.minSlack.set(pairKey(m, r), slack);
    b.model.rows.push({
      name: `min[${m}|${r}]`,
      terms: [...capTerms.map(([i]) => [i, 1] as [number, number]), [slack, 1]],
      lo: minN,
      hi: Number.POSITIVE_INFINITY,
    });
  }
}

/** The most tokens/s one instance of `m` carries on any GPU type. */
function maxCapacity(s: PlanningSnapshot, m: string): number {
  return Math.max(...Object.values(s.capacity[m] ?? { x: 1 }));
}
