/**
 * What the planner's latest plan says about this region — per model its instance target (and GPU mix),
 * forecast, forecast profile and routing share — and the interactive demand the routers measured, which
 * plan following is checked against. Separate from the actor: these are its plan-following inputs, and
 * `aheadNeed`/`demandFloor` turn them into instance counts by the capacity model.
 */
import type { CapacityModel, DemandReport, Payload, Plan } from "@sageserve/protocol";
import type { Clock } from "@sageserve/runtime";

/** Per model: the plan's total for this region, its main GPU type, and its instances per GPU type. */
export interface PlanTarget {
  instances: number;
  gpu: string | undefined;
  byGpu: Record<string, number>;
}

/** The plan's per-model totals for this region while they are summed (`best`: the main type's count). */
export interface PlanTargetSum extends PlanTarget {
  best: number;
}

/** One demand window of a model's interactive requests (summed over the routers). */
interface DemandWindow {
  windowStartMs: number;
  windowMs: number;
  requests: number;
  inputTokens: number;
  outputTokens: number;
}

export class PlanView {
  /** Per model: the plan's total for this region, its main GPU type, and its instances per GPU type. */
  readonly targets = new Map<string, PlanTarget>();
  /** LT-U/LT-UA: scale-ups left in the plan's budget per model. */
  readonly budget = new Map<string, number>();
  readonly forecastTps = new Map<string, number>();
  readonly observedTps = new Map<string, number>();
  /** Interactive demand per model in the last demand windows, newest last (summed over the routers). */
  private readonly measuredIw = new Map<string, DemandWindow[]>();
  /** The plan's forecast profile of this region's interactive demand per model (when it is needed). */
  private readonly profile = new Map<string, { startMs: number; binMs: number; values: number[] }>();
  /** Share of this region's interactive demand the plan keeps here (routing fraction to itself). */
  private readonly keepShare = new Map<string, number>();
  window: { startMs: number; endMs: number } | undefined;

  /**
   * `leadMs`: how far ahead `aheadNeed` looks (boot + engine load + a scaling tick); `gpuTypes`: the
   * types to size with when the plan's is unknown to the capacity model, in preference order.
   */
  constructor(
    private readonly clock: Clock,
    private readonly region: string,
    private capacity: CapacityModel | undefined,
    private readonly gpuTypes: readonly string[],
    private readonly leadMs: number,
    /** The SLO feedback's factor on a model's capacity here (slo-calibration.ts); 1 without one. */
    private readonly factorOf: (model: string) => number = () => 1,
    /** `demandFloor`'s hold: the peak of this many windows' mean (PlanExecutionConfig.holdMeanWindows). */
    private readonly holdMeanWindows = 1,
  ) {}

  /** `demandFloor`'s `up` (the instances the measured demand needs now); undefined without a capacity model. */
  demandNeed(model: string, batchTps: number): number | undefined {
    return this.capacity ? this.demandFloor(model, undefined, batchTps).up : undefined;
  }

  /** Count instances with `cap` from now on (a live cluster measures its engines' model after start-up). */
  useCapacityModel(cap: CapacityModel): void {
    this.capacity = cap;
  }

  /**
   * Take in a new plan: its window, and this region's forecasts, profiles and routing share. Returns the
   * plan's instance targets here per model (the caller applies them).
   */
  absorb(p: Payload<typeof Plan>): Map<string, PlanTargetSum> {
    this.window = { startMs: p.windowStartMs, endMs: p.windowEndMs };
    const targets = new Map<string, PlanTargetSum>();
    for (const t of p.targets) {
      if (t.region !== this.region) continue;
      const cur = targets.get(t.model) ?? { instances: 0, gpu: undefined, best: -1, byGpu: {} };
      cur.instances += t.instances;
      cur.byGpu[t.gpuType] = (cur.byGpu[t.gpuType] ?? 0) + t.instances;
      if (t.instances > cur.best) {
        cur.best = t.instances;
        cur.gpu = t.gpuType;
      }
      targets.set(t.model, cur);
    }
    this.profile.clear();
    for (const f of p.forecast) {
      if (f.region !== this.region) continue;
      this.forecastTps.set(f.model, f.tokensPerSecond);
      if (f.profile?.length && f.binMinutes)
        this.profile.set(f.model, {
          startMs: p.windowStartMs,
          binMs: f.binMinutes * 60_000,
          values: f.profile,
        });
    }
    this.keepShare.clear();
    for (const r of p.routing)
      if (r.from === this.region && r.to === this.region) this.keepShare.set(r.model, r.fraction);
    return targets;
  }

  /** Take in a router's demand report: the observed token rate, and the interactive demand window. */
  recordDemand(d: Payload<typeof DemandReport>): void {
    const t = d.byTier;
    const tokens =
      t["iw-fast"].inputTokens +
      t["iw-fast"].outputTokens +
      t["iw-normal"].inputTokens +
      t["iw-normal"].outputTokens +
      t.niw.inputTokens +
      t.niw.outputTokens;
    this.observedTps.set(d.model, tokens / (d.windowMs / 1000));
    const f = t["iw-fast"];
    const n = t["iw-normal"];
    const windows = this.measuredIw.get(d.model) ?? [];
    this.measuredIw.set(d.model, windows);
    const cur = windows.find((w) => w.windowStartMs === d.windowStartMs);
    if (!cur) {
      windows.push({
        windowStartMs: d.windowStartMs,
        windowMs: d.windowMs,
        requests: f.requests + n.requests,
        inputTokens: f.inputTokens + n.inputTokens,
        outputTokens: f.outputTokens + n.outputTokens,
      });
      windows.sort((a, b) => a.windowStartMs - b.windowStartMs);
      // The hold's windows, and before them the rest of the first one's mean (`holdMeanWindows`).
      if (windows.length > HOLD_WINDOWS + MEAN_WINDOWS - 1) windows.shift();
    } else {
      cur.requests += f.requests + n.requests;
      cur.inputTokens += f.inputTokens + n.inputTokens;
      cur.outputTokens += f.outputTokens + n.outputTokens;
    }
  }

  /**
   * Instances the plan's forecast says `model` needs here one boot lead time from now (boot + engine load
   * + a scaling tick), by the capacity model: LT-U/LT-UA spend the plan's scale-ups by this clock, ahead
   * of the ramp, instead of waiting for utilisation to say so. 0 without a profile or a capacity model.
   */
  aheadNeed(model: string, gpu: string | undefined): number {
    const cap = this.capacity;
    const prof = this.profile.get(model);
    if (!cap || !prof) return 0;
    const g = sizingGpu(cap, model, gpu, this.gpuTypes);
    if (!g) return 0;
    const i = Math.floor((this.clock.now() + this.leadMs - prof.startMs) / prof.binMs);
    if (i < 0) return 0;
    const tps = prof.values[Math.min(i, prof.values.length - 1)]! * (this.keepShare.get(model) ?? 1);
    return cap.instancesFor(model, g, tps / this.factorOf(model), this.mix(model));
  }

  /** Mean prompt and output tokens of the model's interactive requests in the last demand windows. */
  private mix(model: string): { meanInputTokens: number; meanOutputTokens: number } | undefined {
    const windows = (this.measuredIw.get(model) ?? []).slice(-HOLD_WINDOWS);
    const req = windows.reduce((a, w) => a + w.requests, 0);
    if (req === 0) return undefined;
    return {
      meanInputTokens: windows.reduce((a, w) => a + w.inputTokens, 0) / req,
      meanOutputTokens: windows.reduce((a, w) => a + w.outputTokens, 0) / req,
    };
  }

  /**
   * Instances of `model` the measured interactive demand needs here by the capacity model: `up`, for the
   * last 5 demand windows (a minute's count is noisy) — their mean, or where demand is rising, the level a
   * straight line fitted through them reaches at the latest window (the mean of a ramp lags it by two
   * windows) — and `hold`, the most the demand needed over the last 10 windows (capacity is not given back
   * below it): by default the most any single window needed (`holdMeanWindows` 1); with `holdMeanWindows`
   * k > 1, the most the k-window mean ending at any of them needed — nearer the demand's peak than one
   * noisy minute's (an oracle holding the single-window peaks at `day` × 10 pays 8.3 % over the demand's
   * own need, with 3-window means 4.3 %, with 5-window means 3.2 %; a smaller hold also gives capacity back
   * that the next minute's noise asks for again: docs/planner.md "The demand hold"). `batchTps`, the batch
   * rate the agent is releasing whatever the interactive load (the plan's, while jobs are queued), is
   * added to the demand: capacity in use, not room to give back. 0 without a capacity model or recent
   * demand reports.
   */
  demandFloor(model: string, gpu: string | undefined, batchTps = 0): { up: number; hold: number } {
    const cap = this.capacity;
    const now = this.clock.now();
    const stored = this.measuredIw.get(model) ?? [];
    const recent = (span: number) =>
      stored.filter((w) => now - (w.windowStartMs + w.windowMs) <= span * w.windowMs);
    const windows = recent(HOLD_WINDOWS + 1).slice(-HOLD_WINDOWS);
    if (!cap || !windows.length) return { up: 0, hold: 0 };
    const g = sizingGpu(cap, model, gpu, this.gpuTypes);
    if (!g) return { up: 0, hold: 0 };
    const share = this.keepShare.get(model) ?? 1;
    const factor = this.factorOf(model);
    const need = (ws: typeof windows, level?: number): number => {
      const req = ws.reduce((a, w) => a + w.requests, 0);
      if (req === 0) return 0;
      const tokens = ws.reduce((a, w) => a + w.inputTokens + w.outputTokens, 0);
      const seconds = ws.reduce((a, w) => a + w.windowMs, 0) / 1000;
      const tps = Math.max(tokens / seconds, level ?? 0) * share + batchTps;
      return cap.instancesFor(model, g, tps / factor, {
        meanInputTokens: ws.reduce((a, w) => a + w.inputTokens, 0) / req,
        meanOutputTokens: ws.reduce((a, w) => a + w.outputTokens, 0) / req,
      });
    };
    const last = windows.slice(-MEAN_WINDOWS);
    const up = need(last, rampLevel(last));
    if (this.holdMeanWindows <= 1) return { up, hold: Math.max(up, ...windows.map((w) => need([w]))) };
    // Each of the hold's windows with the (up to) k − 1 before it that are recent enough to count.
    const k = Math.min(this.holdMeanWindows, MEAN_WINDOWS);
    const all = recent(HOLD_WINDOWS + k);
    const means = windows.map((w) => {
      const i = all.indexOf(w);
      return need(all.slice(Math.max(0, i - k + 1), i + 1));
    });
    return { up, hold: Math.max(up, ...means) };
  }
}

/** Demand windows the measured need's `up` averages (the most a hold's mean may take), and the hold looks back over. */
const MEAN_WINDOWS = 5;
const HOLD_WINDOWS = 10;

/**
 * Tokens/s at the latest of `ws` on the least-squares line through their tokens/s over their start times,
 * where it rises; undefined for fewer than 3 windows or a level or falling line.
 */
function rampLevel(ws: readonly DemandWindow[]): number | undefined {
  if (ws.length < 3) return undefined;
  const xs = ws.map((w) => w.windowStartMs);
  const ys = ws.map((w) => ((w.inputTokens + w.outputTokens) * 1000) / w.windowMs);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i]! - mx) * (ys[i]! - my);
    sxx += (xs[i]! - mx) ** 2;
  }
  if (!(sxx > 0) || sxy <= 0) return undefined;
  return my + (sxy / sxx) * (xs.at(-1)! - mx);
}

/** The GPU type to size `model` with: `gpu` if the capacity model knows it, else the first type it knows. */
function sizingGpu(
  cap: CapacityModel,
  model: string,
  gpu: string | undefined,
  gpuTypes: readonly string[],
): string | undefined {
  return gpu && cap.capacity(model, gpu) ? gpu : gpuTypes.find((x) => cap.capacity(model, x));
}
