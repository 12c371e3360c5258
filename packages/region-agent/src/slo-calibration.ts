/**
 * SLO feedback on the capacity model, per model in one region. The capacity model's knees are measured
 * on Poisson arrivals of one length mix per point; a region's real traffic is burstier or calmer, its
 * prompts spread differently, and the pooling rule is an approximation — so one model runs above its
 * IW-fast SLO on the model's counts (paying for it) while another runs below. The loop watches the
 * attainment the region's instances actually deliver (feasible IW-fast requests, over the last
 * `windowMs`) and scales the capacity the agent sizes the endpoint with by a factor: down at once when
 * attainment falls below `low`, up a little when it stays above `high` while the capacity model's count
 * is what holds the endpoint (`binding`: otherwise a quiet endpoint at its floor would wind the factor up
 * and the next ramp would find it short). Bounded to [min, max] around the measured knee.
 */
import { SloWindow } from "./policy.js";

export interface SloCalibrationConfig {
  /**
   * Off (the default until every stored result is regenerated with it on): the endpoint is sized by the
   * capacity model as measured.
   */
  enabled: boolean;
  /** Below this attainment of feasible IW-fast requests the factor goes down by `down`. */
  low: number;
  /** Above this, while binding and a window after the last change, the factor goes up by `up`. */
  high: number;
  windowMs: number;
  /** How often the factor may move. */
  stepMs: number;
  /** Fewer finished IW-fast requests than this in the window: no evidence, no change. */
  minSamples: number;
  down: number;
  up: number;
  min: number;
  max: number;
}

/**
 * The band is on an hour's attainment and sits a little below and above the 99 % target: misses come in
 * ramps and bursts, so a band that asks every hour to be above 99 % buys capacity for the worst hour all
 * day. Measured at `day` × 10 (LT-UA at the knee, floor one, seed 1; per model IW-fast of feasible):
 * without the loop 8,105 GPU-hours, models at 98.93–99.91 %; band [0.992, 0.997] over 30 minutes (cut
 * 4 %, raise 2 %) 9,095 GPU-hours, 99.34–99.91 %; [0.99, 0.995] over an hour 8,468, 99.21–99.91 %;
 * [0.987, 0.994] over an hour (these) 8,243, 99.12–99.91 %, every model above its SLO.
 */
export const DEFAULT_SLO_CALIBRATION: SloCalibrationConfig = {
  enabled: false,
  low: 0.987,
  high: 0.994,
  windowMs: 60 * 60_000,
  stepMs: 30 * 60_000,
  minSamples: 500,
  down: 0.04,
  up: 0.03,
  min: 0.8,
  max: 1.25,
};

interface ModelState {
  factor: number;
  lastStepMs: number;
  lastChangeMs: number;
  window: SloWindow;
}

export class SloCalibration {
  private readonly models = new Map<string, ModelState>();

  constructor(readonly cfg: SloCalibrationConfig) {}

  /** The factor `model`'s capacity is multiplied by here (1 until the loop has moved it). */
  factor(model: string): number {
    return this.cfg.enabled ? (this.models.get(model)?.factor ?? 1) : 1;
  }

  /** Factors that differ from 1, for the region's status. */
  factors(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [m, s] of this.models) if (s.factor !== 1) out[m] = s.factor;
    return out;
  }

  /** One finished feasible IW-fast request of `model` here, and whether it missed its TTFT target. */
  record(model: string, atMs: number, missed: boolean): void {
    if (this.cfg.enabled) this.state(model).window.add(atMs, missed);
  }

  /**
   * Move `model`'s factor if a step is due: `binding` says the capacity model's count is what holds the
   * endpoint now (measured demand's count at or above what serves). Returns the factor.
   */
  update(model: string, nowMs: number, binding: boolean): number {
    const c = this.cfg;
    if (!c.enabled) return 1;
    const s = this.state(model);
    if (nowMs - s.lastStepMs < c.stepMs) return s.factor;
    s.lastStepMs = nowMs;
    const a = s.window.attainment(nowMs);
    if (a === undefined) return s.factor;
    if (a < c.low && s.factor > c.min) {
      s.factor = Math.max(c.min, s.factor * (1 - c.down));
      s.lastChangeMs = nowMs;
    } else if (a > c.high && binding && nowMs - s.lastChangeMs >= c.windowMs && s.factor < c.max) {
      s.factor = Math.min(c.max, s.factor * (1 + c.up));
      s.lastChangeMs = nowMs;
    }
    return s.factor;
  }

  private state(model: string): ModelState {
    let s = this.models.get(model);
    if (!s) {
      s = {
        factor: 1,
        lastStepMs: Number.NEGATIVE_INFINITY,
        lastChangeMs: Number.NEGATIVE_INFINITY,
        // The hour in six buckets, the current one included.
        window: new SloWindow(this.cfg.windowMs, 6, this.cfg.minSamples),
      };
      this.models.set(model, s);
    }
    return s;
  }
}
