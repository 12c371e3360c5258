import type { SolveOptions } from "./lp-model.js";

const DEFAULT_TIME_LIMIT_MS = 30_000;
/** Deterministic mode: the wall clock is only a safety net, far beyond any planning solve's work budget. */
const SAFETY_NET_MS = 600_000;
const DETERMINISTIC_MAX_NODES = 50_000;
const DETERMINISTIC_MAX_ITERATIONS = 5_000_000;
/** HiGHS' integer options are 32-bit. */
const HIGHS_INT_MAX = 2_147_483_647;

/**
 * What one solve may spend: wall-clock time and work (branch-and-bound nodes, simplex iterations), compiled
 * once from `SolveOptions` so no other code reads an option's default. Each solver run asks for its share
 * of what is left and is charged what it used. In deterministic mode no share is taken of the clock: every
 * run may use the whole remaining time, which is a safety net only.
 */
export class SolveBudget {
  private readonly deadline: number;
  private nodes = 0;
  private iterations = 0;
  /** Set when a run was stopped by the wall clock rather than by work or the gap. */
  clockStopped = false;

  private constructor(
    readonly deterministic: boolean,
    private readonly maxNodes: number,
    private readonly maxIterations: number,
    timeLimitMs: number,
  ) {
    this.deadline = performance.now() + timeLimitMs;
  }

  static from(o: SolveOptions): SolveBudget {
    const det = o.deterministic ?? false;
    return new SolveBudget(
      det,
      o.maxNodes ?? (det ? DETERMINISTIC_MAX_NODES : Number.POSITIVE_INFINITY),
      o.maxIterations ?? (det ? DETERMINISTIC_MAX_ITERATIONS : Number.POSITIVE_INFINITY),
      o.timeLimitMs ?? (det ? SAFETY_NET_MS : DEFAULT_TIME_LIMIT_MS),
    );
  }

  get used(): { nodes: number; iterations: number } {
    return { nodes: this.nodes, iterations: this.iterations };
  }

  nodesLeft(): number {
    return Math.max(0, this.maxNodes - this.nodes);
  }

  iterationsLeft(): number {
    return Math.max(0, this.maxIterations - this.iterations);
  }

  msLeft(): number {
    return Math.max(0, this.deadline - performance.now());
  }

  /** No work or time left for another run. */
  exhausted(): boolean {
    return this.nodesLeft() < 1 || this.iterationsLeft() < 1 || this.msLeft() <= 0;
  }

  /** Limits for one run that may take `share` of what is left (at least one node). */
  limits(share = 1): { maxNodes: number; maxIterations: number; timeLimitS: number } {
    const part = (left: number) => Math.max(1, Math.floor(share * left));
    return {
      maxNodes: Math.min(HIGHS_INT_MAX, part(this.nodesLeft())),
      maxIterations: Math.min(HIGHS_INT_MAX, part(this.iterationsLeft())),
      timeLimitS: Math.max(0.001, (this.deterministic ? 1 : share) * this.msLeft()) / 1000,
    };
  }

  /** Should a run that has done `iterations` so far, within `limits`, stop now? Records a clock stop. */
  overrun(iterations: number, lim: { maxIterations: number }): boolean {
    if (iterations >= lim.maxIterations) return true;
    if (performance.now() < this.deadline) return false;
    this.clockStopped = true;
    return true;
  }

  charge(nodes: number, iterations: number): void {
    this.nodes += Math.max(0, nodes);
    this.iterations += Math.max(0, iterations);
  }
}
