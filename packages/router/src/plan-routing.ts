/**
 * The latest plan's routing fractions per "model|origin region", and the seeded draw that picks the
 * region an interactive request starts from. Separate from the router actor: it is the one piece of
 * routing state the planner (not the load reports) decides.
 */
import { type KeyCache, type Payload, type Plan, pairKey } from "@sageserve/protocol";
import type { Rng } from "@sageserve/runtime";

/** Where a share of an origin's work goes. */
export interface RouteShare {
  to: string;
  fraction: number;
}

export class PlanRouting {
  /** The latest plan's routing fractions per "model|origin": where interactive work should go. */
  private routing = new Map<string, RouteShare[]>();

  constructor(
    private readonly keys: KeyCache,
    private readonly pickRng: Rng,
  ) {}

  /** True until a plan with routing fractions has been applied. */
  get isEmpty(): boolean {
    return this.routing.size === 0;
  }

  apply(p: Payload<typeof Plan>): void {
    const m = new Map<string, RouteShare[]>();
    for (const r of p.routing) {
      const k = pairKey(r.model, r.from);
      m.set(k, [...(m.get(k) ?? []), { to: r.to, fraction: r.fraction }]);
    }
    this.routing = m;
  }

  /** The routing fractions, per "model|origin region". */
  snapshot(): Record<string, RouteShare[]> {
    return Object.fromEntries(this.routing);
  }

  /** The plan's routing fractions, when present, pick the region interactive work starts from. */
  regionFor(model: string, origin: string): string {
    if (this.routing.size === 0) return origin;
    const split = this.routing.get(this.keys.key(model, origin));
    if (!split || split.length < 2) return split?.[0]?.to ?? origin;
    let u = this.pickRng.next();
    for (const s of split) {
      u -= s.fraction;
      if (u < 0) return s.to;
    }
    return split[split.length - 1]!.to;
  }
}
