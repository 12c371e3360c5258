import { type PromptTiming, SageError } from "@sageserve/protocol";
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
 * Prompt + output tokens per second an instance sustains on traffic whose tokens are `outShare` output:
 * its prefill and decode throughputs blended harmonically (each token costs its phase's time). The
 * planner's fixed per-instance capacities (simulator and live cluster) are this.
 */
export function blendedTokensPerSecond(
  c: { prefillTokensPerSecond: number; decodeTokensPerSecond: number },
  outShare: number,
): number {
  return 1 / ((1 - outShare) / c.prefillTokensPerSecond + outShare / c.decodeTokensPerSecond);
}

/**
 * Prefill time of `b` prompts of `p` tokens in one batch. The profiles measure single prompts of
 * 128–8,192 tokens and batches of 1–64 prompts of 512 tokens. Two readings of them:
 * - the batch curve scaled to p: one(p) × factor(b). Exact at p = 512, but it multiplies the fixed
 *   per-iteration cost of a short prompt by b (a 70B batch of 80 × 100-token prompts: 3.9 s);
 * - the single-prompt curve at the batch's total tokens: one(p·b). The measurements agree with it
 *   (llama2-70b H100: 8 × 512 = 434 ms vs one 4,096-token prompt 435 ms; 16 × 512 = 926 vs 976 ms;
 *   bloom-176b H100: 628 vs 698 ms, 1,301 vs 1,530 ms), slightly high for long prompts (attention is
 *   quadratic within a prompt, not across a batch).
 * The batch costs the smaller of the two: the measured batch curve where it applies, never a per-prompt
 * overhead the hardware does not pay.
 */
function batchPrefillMs(c: { prefill: Curve; batch: Curve }, p: number, b: number): number {
  const one = interpolate(c.prefill, Math.max(1, p));
  if (b <= 1) return one;
  return Math.min(one * interpolate(c.batch, b), interpolate(c.prefill, Math.max(1, p * b)));
}

/**
 * Latency of one instance (one model on one 8-GPU VM at TP 8) from the measured
 * profiles: prefill time by prompt tokens in the batch, decode-iteration time by
 * batch size, KV capacity from the model's shape and the VM's memory.
 */
export class PerformanceModel implements PromptTiming {
  /** Curves by model, then GPU type (nested: the per-request lookups build no key string). */
  private readonly byKey = new Map<string, Map<string, { prefill: Curve; batch: Curve; decode: Curve }>>();

  constructor(readonly table: ProfileTable) {
    for (const [modelId, m] of Object.entries(MODELS)) {
      for (const [gpuId, g] of Object.entries(GPUS)) {
        const p = table.profiles.find(
          (x) => x.profile === m.profile && x.hardware === g.hardware && x.tensorParallel === 8,
        );
        if (!p) continue;
        let byGpu = this.byKey.get(modelId);
        if (!byGpu) {
          byGpu = new Map();
          this.byKey.set(modelId, byGpu);
        }
        byGpu.set(gpuId, { prefill: p.prefillMs, batch: p.prefillBatchFactor, decode: p.decodeIterMs });
      }
    }
  }

  has(model: string, gpu: string): boolean {
    return this.byKey.get(model)?.has(gpu) ?? false;
  }

  /** GPU types this model has a profile for. */
  gpusFor(model: string): string[] {
    return Object.keys(GPUS).filter((g) => this.has(model, g));
  }

  private curves(model: string, gpu: string): { prefill: Curve; batch: Curve; decode: Curve } {
    const c = this.byKey.get(model)?.get(gpu);
    if (c) return c;
    modelSpec(model);
    gpuSpec(gpu);
    throw new SageError("CONFIG", `no performance profile for ${model} on ${gpu}`);
  }

  /** Latency functions bound to one (model, GPU): the simulator's per-iteration hot path. */
  timingFor(
    model: string,
    gpu: string,
  ): { prefillMs(promptTokens: number, batch: number): number; decodeIterMs(batch: number): number } {
    const c = this.curves(model, gpu);
    return {
      prefillMs: (p, b) => batchPrefillMs(c, p, b),
      decodeIterMs: (b) => interpolate(c.decode, Math.max(1, b)),
    };
  }

  /** Prefill of `batch` prompts of `promptTokens` each (batch 1: one prompt). */
  prefillMs(model: string, gpu: string, promptTokens: number, batch = 1): number {
    return batchPrefillMs(this.curves(model, gpu), promptTokens, batch);
  }

  /**
   * The longest prompt the profile of (model, GPU) measured (the prefill curve's last point: 8,192
   * tokens for every built-in profile). Longer prompts are timed by extrapolating the last segment.
   */
  measuredPromptTokens(model: string, gpu: string): number {
    return this.curves(model, gpu).prefill.x.at(-1) ?? 0;
  }

  /**
   * An engine step's token budget (vLLM's `max_num_batched_tokens`) that keeps a full step within
   * `stepMs`: the largest multiple of 256 tokens in [min, max] whose prefill fits. A step carries the
   * prefill chunks of several requests, and an arrival waits for the step under way and then for its own
   * step, so the budget bounds the queueing part of TTFT: with vLLM's 8,192 a bloom-176b step on H100
   * takes 1.5 s, more than the whole IW-fast target. Operators set this flag per deployment; this is
   * SageServe's default for it (docs/simulator.md).
   */
  stepTokenBudget(model: string, gpu: string, stepMs = 250, min = 512, max = 8_192): number {
    let best = min;
    for (let b = min; b <= max; b += 256) if (this.prefillMs(model, gpu, b) <= stepMs) best = b;
    return best;
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
  /**
   * The GPU types able to serve `model`'s interactive traffic within a TTFT target: a type qualifies when
   * prefilling a long prompt (`promptTokens`, e.g. the workload's p95) alone takes at most half the target
   * (the other half is left for queueing behind other prompts), or at most 1.25 × the fastest type's time
   * (when even the fastest cannot do it in half, the near-fastest are the best there is). The planner prices
   * GPU types by throughput per dollar; without this rule an A100, a third of an H100's price at 55–85 % of
   * its throughput, wins every plan although its prefill is twice as slow — on `day` LT-I moved the fleet
   * to A100s for 64 % less money and IW-fast attainment fell from 99.5 % to 89.3 %.
   */
  latencyEligible(
    model: string,
    gpus: readonly string[],
    promptTokens: number,
    ttftTargetMs: number,
  ): string[] {
    const t = gpus
      .filter((g) => this.has(model, g))
      .map((g) => ({ g, ms: this.prefillMs(model, g, promptTokens) }));
    if (t.length === 0) return [];
    const fastest = Math.min(...t.map((x) => x.ms));
    return t.filter((x) => x.ms <= Math.max(0.5 * ttftTargetMs, 1.25 * fastest)).map((x) => x.g);
  }

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
