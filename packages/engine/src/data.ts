import { readFileSync } from "node:fs";

/** A JSON file, parsed (the packages' committed built-in data files). */
export function readJson<T>(url: URL): T {
  return JSON.parse(readFileSync(url, "utf8")) as T;
}

/** One of this package's committed data files (packages/engine/data/, see its README), parsed. */
export function readBuiltinData<T>(file: string): T {
  return readJson<T>(new URL(`../data/${file}`, import.meta.url));
}
