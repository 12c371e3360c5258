import { GPUS } from "@sageserve/engine";
import type { CapacityModel, LengthMix } from "@sageserve/protocol";
import type { SimRequest, Workload } from "../workload/types.js";

/**
 * The capacity bound of a workload: the GPU-hours an oracle would pay that knew every minute's demand in
 * advance, booted in no time, and held each minute exactly the instances the capacity model counts for
 * it — the least any scaling policy can pay while holding the SLO the capacity model stands for. It
 * depends on the workload alone (not on the policy), so every run of a comparison shares it, and a run's
 * GPU-hours over it are what forecasting, boot lead, bursts and scaling rules cost.
 *
 * - `interactive`: per (model, region, minute), the instances the capacity model (at its pooled knee,
 *   target utilisation 1) counts for that minute's interactive tokens/s and length mix, on the model's
 *   cheapest GPU type in GPU-hours; no floor (an idle minute holds none).
 * - `batch`: the batch (NIW) tokens those instances could not also have completed — each at its
 *   saturation throughput, less the interactive load it carries, at any time of the run (deadlines
 *   ignored) — at saturation throughput. Optimistic on purpose: batch work does not in fact fill an
 *   instance to saturation without delaying interactive prompts.
 * - `pooled`: the same with each model's regions as one pool (every region's demand served anywhere,
 *   the distance ignored: the simulator charges none) — lower still where pools are small; `total` is
 *   the in-region count, where each region serves its own demand.
 */
export interface CapacityBoundReport {
  total: number;
  interactive: number;
  batch: number;
  pooled: { total: number; interactive: number; batch: number };
  byModel: Record<string, number>;
}

const MINUTE_MS = 60_000;

/** Per (model, region): interactive requests and tokens per arrival minute. */
interface Minutes {
  requests: number[];
  inputTokens: number[];
  outputTokens: number[];
}

export class CapacityBound {
  private readonly iw = new Map<string, Map<string, Minutes>>();
  private readonly niwTokens = new Map<string, number>();

  /** Counts a batch of arriving requests. */
  add(batch: readonly SimRequest[]): void {
    for (const r of batch) {
      if (r.tier === "niw") {
        this.niwTokens.set(r.model, (this.niwTokens.get(r.model) ?? 0) + r.inputTokens + r.outputTokens);
        continue;
      }
      const m = this.minutesOf(r.model, r.region);
      const k = Math.floor(r.arrivalMs / MINUTE_MS);
      while (m.requests.length <= k) {
        m.requests.push(0);
        m.inputTokens.push(0);
        m.outputTokens.push(0);
      }
      m.requests[k]! += 1;
      m.inputTokens[k]! += r.inputTokens;
      m.outputTokens[k]! += r.outputTokens;
    }
  }

  private minutesOf(model: string, region: string): Minutes {
    let byRegion = this.iw.get(model);
    if (!byRegion) {
      byRegion = new Map();
      this.iw.set(model, byRegion);
    }
    let m = byRegion.get(region);
    if (!m) {
      m = { requests: [], inputTokens: [], outputTokens: [] };
      byRegion.set(region, m);
    }
    return m;
  }

  /**
   * The bound on `cap` (the knee itself: build it at target utilisation 1), over the GPU types of
   * `gpuTypes` the model has a capacity point for; undefined when no model has one.
   */
  result(cap: CapacityModel, gpuTypes: readonly string[]): CapacityBoundReport | undefined {
    const models = [...new Set([...this.iw.keys(), ...this.niwTokens.keys()])].sort();
    const out: CapacityBoundReport = {
      total: 0,
      interactive: 0,
      batch: 0,
      pooled: { total: 0, interactive: 0, batch: 0 },
      byModel: {},
    };
    let any = false;
    for (const model of models) {
      let best: ModelBound | undefined;
      for (const g of gpuTypes.filter((x) => cap.gpus(model).includes(x))) {
        const b = this.modelBound(cap, model, g);
        if (b && (!best || b.local.interactive + b.local.batch < best.local.interactive + best.local.batch))
          best = b;
      }
      if (!best) continue;
      any = true;
      out.interactive += best.local.interactive;
      out.batch += best.local.batch;
      out.pooled.interactive += best.pooled.interactive;
      out.pooled.batch += best.pooled.batch;
      out.byModel[model] = round(best.local.interactive + best.local.batch);
    }
    if (!any) return undefined;
    const p = out.pooled;
    return {
      total: round(out.interactive + out.batch),
      interactive: round(out.interactive),
      batch: round(out.batch),
      pooled: {
        total: round(p.interactive + p.batch),
        interactive: round(p.interactive),
        batch: round(p.batch),
      },
      byModel: out.byModel,
    };
  }

  private modelBound(cap: CapacityModel, model: string, gpu: string): ModelBound | undefined {
    const gpus = GPUS[gpu]?.gpusPerVm ?? 8;
    const byRegion = [...(this.iw.get(model) ?? new Map<string, Minutes>()).values()];
    const satTps = saturationTps(cap, model, gpu, mixOf(byRegion));
    if (satTps === undefined) return undefined;
    const niw = this.niwTokens.get(model) ?? 0;
    const tally = { instanceMinutes: 0, spareTokens: 0 };
    // One minute of `req` interactive requests with these tokens, held by the capacity model's count.
    const hold = (t: typeof tally, req: number, inT: number, outT: number): void => {
      if (req === 0) return;
      const tps = (inT + outT) / 60;
      const mix = { meanInputTokens: inT / req, meanOutputTokens: outT / req };
      const n = cap.instancesFor(model, gpu, tps, mix);
      t.instanceMinutes += n;
      t.spareTokens += Math.max(0, n * (saturationTps(cap, model, gpu, mix) ?? satTps) - tps) * 60;
    };
    const gpuHours = (t: typeof tally) => ({
      interactive: (t.instanceMinutes / 60) * gpus,
      batch: (Math.max(0, niw - t.spareTokens) / satTps / 3600) * gpus,
    });
    for (const m of byRegion)
      for (let k = 0; k < m.requests.length; k++)
        hold(tally, m.requests[k]!, m.inputTokens[k]!, m.outputTokens[k]!);
    const pooled = { instanceMinutes: 0, spareTokens: 0 };
    const minutes = Math.max(0, ...byRegion.map((m) => m.requests.length));
    for (let k = 0; k < minutes; k++) {
      let req = 0;
      let inT = 0;
      let outT = 0;
      for (const m of byRegion) {
        req += m.requests[k] ?? 0;
        inT += m.inputTokens[k] ?? 0;
        outT += m.outputTokens[k] ?? 0;
      }
      hold(pooled, req, inT, outT);
    }
    return { local: gpuHours(tally), pooled: gpuHours(pooled) };
  }
}

interface ModelBound {
  local: { interactive: number; batch: number };
  pooled: { interactive: number; batch: number };
}

/** A run's GPU-hours over its workload's capacity bound, as a fraction (0.079: 7.9 % over); undefined without one. */
export function overBound(r: {
  gpuHours: { total: number };
  capacityBound?: CapacityBoundReport;
}): number | undefined {
  const b = r.capacityBound?.total;
  return b ? (r.gpuHours.total - b) / b : undefined;
}

/** A workload whose requests `bound` counts as they are read. */
export function boundedWorkload(w: Workload, bound: CapacityBound): Workload {
  return {
    name: w.name,
    durationMs: w.durationMs,
    models: w.models,
    regions: w.regions,
    ...(w.warnings ? { warnings: w.warnings } : {}),
    next: () => {
      const b = w.next();
      bound.add(b);
      return b;
    },
  };
}

/** Tokens/s one instance completes flat out for a mix: its saturation, or its knee where that is higher. */
function saturationTps(
  cap: CapacityModel,
  model: string,
  gpu: string,
  mix: LengthMix | undefined,
): number | undefined {
  const knee = cap.capacity(model, gpu, mix, 1);
  // A pool of unbounded size carries the saturation throughput per instance (s − (s − knee)/√N → s).
  const flat = cap.capacity(model, gpu, mix, Number.MAX_SAFE_INTEGER);
  if (!knee || !flat) return undefined;
  return Math.max(knee.tokensPerSecond, flat.tokensPerSecond);
}

/** The interactive length mix over every minute of a model's regions (undefined: none arrived). */
function mixOf(byRegion: readonly Minutes[]): LengthMix | undefined {
  let req = 0;
  let inT = 0;
  let outT = 0;
  for (const m of byRegion)
    for (let k = 0; k < m.requests.length; k++) {
      req += m.requests[k]!;
      inT += m.inputTokens[k]!;
      outT += m.outputTokens[k]!;
    }
  return req > 0 ? { meanInputTokens: inT / req, meanOutputTokens: outT / req } : undefined;
}

const round = (x: number): number => Math.round(x * 100) / 100;
