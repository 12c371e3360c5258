/**
 * A solver-neutral model (`lp-model.ts`) in HiGHS' input formats: CPLEX LP text (for reading a model or
 * feeding it to the HiGHS command line) and the column/CSR arrays its Model API takes. Separate from
 * `highs.ts` because it is plain data conversion, with no solver state.
 */
import type { ModelData } from "highs";
import type { LpModel } from "./lp-model.js";

const num = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(15));

/** CPLEX LP text with generated names (x0…, r0…) so that any model name is safe. */
export function toLpText(model: LpModel): string {
  const out: string[] = [
    "Minimize",
    ` obj: ${model.vars.map((v, i) => `${v.cost >= 0 ? "+" : "-"} ${num(Math.abs(v.cost))} x${i}`).join(" ") || "0 x0"}`,
    "Subject To",
  ];
  model.rows.forEach((r, j) => {
    const lhs =
      r.terms.map(([i, c]) => `${c >= 0 ? "+" : "-"} ${num(Math.abs(c))} x${i}`).join(" ") || "0 x0";
    if (r.lo === r.hi) out.push(` r${j}: ${lhs} = ${num(r.lo)}`);
    else {
      if (r.lo > Number.NEGATIVE_INFINITY) out.push(` r${j}l: ${lhs} >= ${num(r.lo)}`);
      if (r.hi < Number.POSITIVE_INFINITY) out.push(` r${j}h: ${lhs} <= ${num(r.hi)}`);
    }
  });
  out.push("Bounds");
  model.vars.forEach((v, i) => {
    const lb = v.lb === Number.NEGATIVE_INFINITY ? "-inf" : num(v.lb);
    const ub = v.ub === Number.POSITIVE_INFINITY ? "+inf" : num(v.ub);
    out.push(` ${lb} <= x${i} <= ${ub}`);
  });
  const ints = model.vars.flatMap((v, i) => (v.integer ? [`x${i}`] : []));
  if (ints.length) out.push("General", ` ${ints.join(" ")}`);
  out.push("End");
  return out.join("\n");
}

/** The model as HiGHS arrays (CSR rows; duplicate terms of a row summed, zeros dropped); no integrality. */
export function toHighsData(model: LpModel): ModelData {
  const starts = new Int32Array(model.rows.length + 1);
  const indices: number[] = [];
  const values: number[] = [];
  const acc = new Map<number, number>();
  model.rows.forEach((r, j) => {
    acc.clear();
    for (const [i, c] of r.terms) acc.set(i, (acc.get(i) ?? 0) + c);
    for (const [i, c] of acc) {
      if (c === 0) continue;
      indices.push(i);
      values.push(c);
    }
    starts[j + 1] = indices.length;
  });
  // HiGHS' infinity is IEEE Infinity, so ±Infinity bounds pass through unchanged.
  return {
    numCols: model.vars.length,
    numRows: model.rows.length,
    colCost: Float64Array.from(model.vars, (v) => v.cost),
    colLower: Float64Array.from(model.vars, (v) => v.lb),
    colUpper: Float64Array.from(model.vars, (v) => v.ub),
    rowLower: Float64Array.from(model.rows, (r) => r.lo),
    rowUpper: Float64Array.from(model.rows, (r) => r.hi),
    matrix: {
      format: "csr",
      numRows: model.rows.length,
      numCols: model.vars.length,
      starts,
      indices: Int32Array.from(indices),
      values: Float64Array.from(values),
    },
  };
}
