import { readBuiltinData } from "../data.js";

export interface WorkloadStats {
  azure2023: Record<
    "code" | "conv",
    {
      requests: number;
      meanRatePerSecond: number;
      interArrivalCv: number;
      medianMinuteCv: number;
      inputTokens: number[];
      outputTokens: number[];
    }
  >;
  servegenWeekly10min: Record<"m-large" | "m-mid" | "m-small", number[]>;
}

let cached: WorkloadStats | undefined;

/** Token-length quantiles, burstiness and weekly shapes derived from public traces (data/README.md). */
export function workloadStats(): WorkloadStats {
  cached ??= readBuiltinData<WorkloadStats>("workload-stats.json");
  return cached;
}

/** Inverse-CDF sample from evenly spaced quantiles, interpolating between them. */
export function sampleQuantiles(q: readonly number[], u: number): number {
  const pos = u * (q.length - 1);
  const i = Math.floor(pos);
  const lo = q[i]!;
  const hi = q[Math.min(q.length - 1, i + 1)]!;
  return Math.max(1, Math.round(lo + (hi - lo) * (pos - i)));
}
