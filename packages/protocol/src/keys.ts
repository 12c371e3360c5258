/** The one composite map key of two names: "a|b" (e.g. "model|region"). */
export function pairKey(a: string, b: string): string {
  return `${a}|${b}`;
}

/** The one composite map key of three names: "a|b|c" (e.g. "model|region|gpu"). */
export function tripleKey(a: string, b: string, c: string): string {
  return `${a}|${b}|${c}`;
}

/**
 * Composite map keys ("model|region", "model|region|pool") built once and reused: a hot path that
 * keys its maps by a few names (models, regions, pools) looks the string up instead of joining it
 * again for every request. Meant for small domains; it forgets everything past 10,000 keys.
 */
export class KeyCache {
  private readonly byFirst = new Map<string, Map<string, string>>();
  private size = 0;

  /** `${a}|${b}`. */
  key(a: string, b: string): string {
    let m = this.byFirst.get(a);
    if (m === undefined) {
      m = new Map();
      this.byFirst.set(a, m);
    }
    let k = m.get(b);
    if (k === undefined) {
      k = pairKey(a, b);
      if (++this.size > 10_000) {
        this.byFirst.clear();
        this.size = 0;
      }
      m.set(b, k);
    }
    return k;
  }

  /** `${a}|${b}|${c}`. */
  key3(a: string, b: string, c: string): string {
    return this.key(this.key(a, b), c);
  }
}
