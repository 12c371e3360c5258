import { readFileSync } from "node:fs";
import { PerformanceModel, type ProfileTable } from "./model.js";

let cached: PerformanceModel | undefined;

/** The performance model from the committed, derived profile table (data/perf-profiles.json). */
export function builtinPerformanceModel(): PerformanceModel {
  cached ??= new PerformanceModel(
    JSON.parse(
      readFileSync(new URL("../../data/perf-profiles.json", import.meta.url), "utf8"),
    ) as ProfileTable,
  );
  return cached;
}
