/**
 * The small deterministic MIPs the HiGHS warm-up solves (`preloadSolvers`): shaped like a small plan, they
 * make V8 optimise the solver's hot wasm functions before the first real plan. Separate from `highs.ts`
 * because they are test-like data, not solving.
 */
import type { LpModel, LpRow, LpVar } from "./lp-model.js";

/** A deterministic covering MIP shaped like a small plan: integer instances of 3 types per site, demand rows per site
 * and per group, supply rows per type, penalised slack. */
export function warmUpModel(seed: number): LpModel {
  let x = seed * 2654435761;
  const rnd = () => {
    x = (Math.imul(x ^ (x >>> 15), 2246822507) + 0x6d2b79f5) >>> 0;
    return x / 2 ** 32;
  };
  const sites = 12;
  const types = 3;
  const vars: LpVar[] = [];
  const rows: LpRow[] = [];
  const supply: [number, number][][] = Array.from({ length: types }, () => []);
  const group: [number, number][][] = [[], [], []];
  let groupNeed = [0, 0, 0];
  for (let s = 0; s < sites; s++) {
    const terms: [number, number][] = [];
    for (let t = 0; t < types; t++) {
      const i =
        vars.push({ name: `n${s}_${t}`, cost: 10 + 30 * t + 5 * rnd(), lb: 0, ub: 40, integer: true }) - 1;
      const cap = (1 + t) * (0.8 + 0.4 * rnd());
      terms.push([i, cap]);
      supply[t]!.push([i, 1]);
      group[s % 3]!.push([i, cap]);
    }
    const u =
      vars.push({ name: `u${s}`, cost: 500, lb: 0, ub: Number.POSITIVE_INFINITY, integer: false }) - 1;
    terms.push([u, 1]);
    group[s % 3]!.push([u, 1]);
    const need = 3 + 20 * rnd();
    groupNeed = groupNeed.map((g, k) => (k === s % 3 ? g + need : g));
    rows.push({ name: `demand${s}`, terms, lo: need, hi: Number.POSITIVE_INFINITY });
  }
  for (const [t, terms] of supply.entries())
    rows.push({ name: `supply${t}`, terms, lo: 0, hi: 30 + 20 * rnd() });
  for (const [k, terms] of group.entries())
    rows.push({ name: `group${k}`, terms, lo: groupNeed[k]!, hi: Number.POSITIVE_INFINITY });
  return { vars, rows };
}
