import type { Rng } from "@sageserve/runtime";

/** Poisson sample: Knuth below mean 30, a rounded normal above (error < 1 % there). */
export function poisson(rng: Rng, mean: number): number {
  if (mean <= 0) return 0;
  if (mean < 30) {
    const l = Math.exp(-mean);
    let k = 0;
    let p = 1;
    do {
      k++;
      p *= rng.next();
    } while (p > l);
    return k - 1;
  }
  return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal(rng)));
}

export function normal(rng: Rng): number {
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Gamma(shape k, scale θ) by Marsaglia–Tsang. */
export function gamma(rng: Rng, k: number, theta: number): number {
  if (k < 1) return gamma(rng, k + 1, theta) * rng.next() ** (1 / k);
  const d = k - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = normal(rng);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng.next();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v)))
      return d * v * theta;
  }
}
