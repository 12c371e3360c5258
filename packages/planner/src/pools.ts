import type { CapacityModel, LengthMix } from "@sageserve/protocol";
import type { PlanTarget } from "./ilp.js";
import type { PlanningSnapshot } from "./snapshot.js";

/**
 * Pool-sized instance counts for a solved plan. The ILP prices each instance of (model, GPU) at one capacity for every region — that of the pool the
 * model's quietest region needs, the least any region's instances carry (capacity per instance grows with
 * the pool, `CapacityModel`). A busier region then gets more instances than its own pool needs. This
 * trims each (model, region) served on one GPU type to the pool that carries the demand the plan sends
 * there (its own interactive demand and what is routed to it, with the snapshot's headroom, plus its batch
 * need), never below the minimum instances, and raises one the ILP left short of its pool (within the
 * region's supply): the count a region agent derives from the same demand.
 */
export function trimToPools(
  targets: readonly PlanTarget[],
  routing: readonly { model: string; from: string; to: string; fraction: number }[],
  s: PlanningSnapshot,
  cm: CapacityModel,
  mixOf: (model: string) => LengthMix | undefined,
): PlanTarget[] {
  if (!cm.pooling) return [...targets];
  const cfg = s.config;
  const key = (m: string, r: string) => `${m}|${r}`;
  const served = new Map<string, number>();
  const add = (m: string, r: string, tps: number) =>
    served.set(key(m, r), (served.get(key(m, r)) ?? 0) + tps);
  const routed = new Set(routing.map((x) => key(x.model, x.from)));
  for (const d of s.demand) {
    add(d.model, d.region, d.niwRequiredTokensPerSecond ?? cfg.niwShare * d.niwTokensPerSecond);
    const iw = (1 + cfg.headroom) * d.iwTokensPerSecond;
    if (!routed.has(key(d.model, d.region))) add(d.model, d.region, iw);
    else
      for (const x of routing)
        if (x.model === d.model && x.from === d.region) add(d.model, x.to, iw * x.fraction);
  }
  const gpusIn = new Map<string, number>();
  for (const t of targets)
    if (t.instances > 0) gpusIn.set(key(t.model, t.region), (gpusIn.get(key(t.model, t.region)) ?? 0) + 1);
  // What each region's GPU type has left for a raise (the one-capacity ILP can also land one short of a
  // pool: n instances at the quietest pool's capacity can cover a demand n at their own pool's cannot).
  const used = new Map<string, number>();
  for (const t of targets)
    used.set(key(t.region, t.gpu), (used.get(key(t.region, t.gpu)) ?? 0) + t.instances);
  return targets.map((t) => {
    const k = key(t.model, t.region);
    if (t.instances <= 0 || gpusIn.get(k) !== 1) return t;
    const min = cfg.minInstancesByModel?.[t.model] ?? cfg.minInstances;
    const want = Math.max(min, cm.instancesFor(t.model, t.gpu, served.get(k) ?? 0, mixOf(t.model)));
    if (want === t.instances) return t;
    let n = want;
    if (want > t.instances) {
      const free = (s.supply[t.region]?.[t.gpu] ?? 0) - (used.get(key(t.region, t.gpu)) ?? 0);
      n = t.instances + Math.max(0, Math.min(want - t.instances, free));
    }
    used.set(key(t.region, t.gpu), (used.get(key(t.region, t.gpu)) ?? 0) + n - t.instances);
    return { ...t, instances: n, delta: t.delta + (n - t.instances) };
  });
}
