import { readJson } from "@sageserve/engine";

/** One of the simulator's committed data files (packages/sim/data/, see its README), parsed. */
export function readBuiltinData<T>(file: string): T {
  return readJson<T>(new URL(`../data/${file}`, import.meta.url));
}
