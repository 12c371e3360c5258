import { readFileSync } from "node:fs";

/** One of the committed built-in data files (packages/sim/data/, see its README), parsed. */
export function readBuiltinData<T>(file: string): T {
  return JSON.parse(readFileSync(new URL(`../data/${file}`, import.meta.url), "utf8")) as T;
}
