import { SageError } from "@sageserve/protocol";
import { GPUS, gpuSpec, kvBytesPerToken, MODELS, modelSpec } from "../catalog.js";
import { type Curve, type FittedProfile, interpolate } from "./fit.js";

export interface ProfileTable {
  source: string;
  profiles: (FittedProfile & { derivedFrom?: string })[];
}

export interface InstanceCapacity {
  /** Largest batch whose decode iteration stays within the TBT target and KV memory. */
  safeBatch: number;
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
  kvTokenCapacity: number;
}

/**
 * Latency of one instance (one model on one 8-GPU VM at TP 8) from the measured
 * profiles: prefill time by prompt tokens in the batch, decode-iteration time by
 * batch size, KV capacity from the model's shape and the VM's memory.
 */
export class PerformanceModel {
  private readonly byKey = new Map<string, { prefill: Curve; batch: Curve; decode: Curve }>();

  constructor(readonly table: ProfileTable) {
    for (const [modelId, m] of Object.entries(MODELS)) {
      for (const [gpuId, g] of Object.entries(GPUS)) {
        const p = table.profiles.find(
          (x) => x.profile === m.profile && x.hardware === g.hardware && x.tensorParallel === 8,
        );
        if (p)
          this.byKey.set(`${modelId}|${gpuId}`, {
            prefill: p.prefillMs,
            batch: p.prefillBatchFactor,
            decode: p.decodeIterMs,
          });
      }
    }
  }

  has(model: string, gpu: string): boolean {
    return this.byKey.has(`${model}|${gpu}`);
  }

  /** GPU types this model has a profile for. */
  gpusFor(model: string): string[] {
    return Object.keys(GPUS).filter((g) => this.has(model, g));
  }

  private curves(model: string, gpu: string): { prefill: Curve; batch: Curve; decode: Curve } {
    const c = this.byKey.get(`${model}|${gpu}`);
    if (c) return c;
    modelSpec(model);
    gpuSpec(gpu);
    throw new SageError("CONFIG", `no performance profile for ${model} on ${gpu}`);
  }

  /** Prefill of `batch` prompts of `promptTokens` each (batch 1: one prompt). */
  /** Latency functions bound to one (model, GPU): the simulator's per-iteration hot path. */
  timingFor(
    model: string,
    gpu: string,
  ): { prefillMs(promptTokens: number, batch: number): number; decodeIterMs(batch: number): number } {
    const c = this.curves(model, gpu);
    return {
      prefillMs: (p, b) => {
        const one = interpolate(c.prefill, Math.max(1, p));
        return b <= 1 ? one : one * interpolate(c.batch, b);
      },
      decodeIterMs: (b) => interpolate(c.decode, Math.max(1, b)),
    };
  }

  prefillMs(model: string, gpu: string, promptTokens: number, batch = 1): number {
    const c = this.curves(model, gpu);
    const one = interpolate(c.prefill, Math.max(1, promptTokens));
    return batch <= 1 ? one : one * interpolate(c.batch, batch);
  }

  decodeIterMs(model: string, gpu: string, batchSize: number): number {
    return interpolate(this.curves(model, gpu).decode, Math.max(1, batchSize));
  }

  kvTokenCapacity(model: string, gpu: string): number {
    const m = modelSpec(model);
    const g = gpuSpec(gpu);
    const free = g.gpusPerVm * g.memoryGBPerGpu * 1024 ** 3 - m.weightsGB * 1e9;
    return Math.max(0, Math.floor(free / kvBytesPerToken(m)));
  }

  /**
   * Sustainable throughput of one instance for the planner: the largest batch
   * whose decode iteration meets `tbtTargetMs` (default 100 ms) and whose KV
   * footprint fits at `meanContextTokens` per request.
   */
  capacity(
    model: string,
    gpu: string,
    opts: { tbtTargetMs?: number; meanContextTokens?: number } = {},
  ): InstanceCapacity {
    const tbt = opts.tbtTargetMs ?? 100;
    const kv = this.kvTokenCapacity(model, gpu);
    const byKv = Math.max(1, Math.floor(kv / (opts.meanContextTokens ?? 2048)));
    let safeBatch = 1;
    for (let b = 1; b <= Math.min(512, byKv); b++) {
      if (this.decodeIterMs(model, gpu, b) <= tbt) safeBatch = b;
      else break;
    }
    return {
      safeBatch,
      decodeTokensPerSecond: (safeBatch * 1000) / this.decodeIterMs(model, gpu, safeBatch),
      prefillTokensPerSecond: (8192 * 1000) / this.prefillMs(model, gpu, 8192),
      kvTokenCapacity: kv,
    };
  }
}
