import { readBuiltinData } from "../data.js";
import { PerformanceModel, type ProfileTable } from "./model.js";

let cached: PerformanceModel | undefined;

/** The performance model from the committed, derived profile table (data/perf-profiles.json). */
export function builtinPerformanceModel(): PerformanceModel {
  cached ??= new PerformanceModel(readBuiltinData<ProfileTable>("perf-profiles.json"));
  return cached;
}
