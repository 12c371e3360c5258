/**
 * The router's view of the fleet: one InstanceView per instance from its load reports and its node's
 * heartbeats, indexed by endpoint ("model|region|pool") for the per-request lookup. Separate from the
 * actor so the routing code reads as decisions over this table; the per-request `candidates` lookup
 * allocates nothing unless the request avoids nodes.
 */
import type { Heartbeat, KeyCache, LoadReport, Payload } from "@sageserve/protocol";
import { type InstanceView, isRoutable, type RouterConfig } from "./policy.js";

/** An instance routing could use now (for operators and tests). */
export interface RoutableInstance {
  instanceId: string;
  nodeId: string;
  region: string;
}

export class InstanceTable {
  private readonly views = new Map<string, InstanceView>();
  private readonly byEndpoint = new Map<string, InstanceView[]>();
  /** Per node: its last heartbeat's arrival plus its ttlMs (silence past it = the node is gone). */
  private readonly nodeAliveUntil = new Map<string, number>();

  constructor(private readonly keys: KeyCache) {}

  private key(model: string, region: string, pool: string | undefined): string {
    return this.keys.key3(model, region, pool ?? "");
  }

  /** Take in a load report: a new (or moved) instance gets a fresh view, a known one is refreshed. */
  applyLoad(r: Payload<typeof LoadReport>): void {
    const v = this.views.get(r.instanceId);
    const endpointChanged = !v || v.model !== r.model || v.pool !== r.pool || v.region !== r.region;
    if (v && endpointChanged) this.removeView(v);
    if (!v || endpointChanged) this.addView(r);
    else refreshView(v, r);
  }

  /**
   * Node liveness: an instance whose node has been silent for its heartbeat TTL leaves routing at once,
   * long before its last load report would go stale (a SIGKILLed node agent says nothing more).
   */
  applyHeartbeat(hb: Payload<typeof Heartbeat>, nowMs: number): void {
    const until = nowMs + hb.ttlMs;
    this.nodeAliveUntil.set(hb.nodeId, until);
    for (const i of hb.instances) {
      const v = this.views.get(i.instanceId);
      if (v && v.nodeId === hb.nodeId) v.aliveUntilMs = until;
    }
  }

  /** Instances routing would use for `model` right now (all models when undefined), by instance id. */
  routable(model: string | undefined, nowMs: number, cfg: RouterConfig): RoutableInstance[] {
    return [...this.views.values()]
      .filter((v) => (model === undefined || v.model === model) && isRoutable(v, nowMs, cfg))
      .map((v) => ({ instanceId: v.instanceId, nodeId: v.nodeId, region: v.region }))
      .sort((a, b) => (a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0));
  }

  /** The instances of one endpoint, without those on the nodes in `avoid`. */
  candidates(
    model: string,
    region: string,
    pool: string | undefined,
    avoid?: ReadonlySet<string>,
  ): InstanceView[] {
    const all = this.byEndpoint.get(this.key(model, region, pool)) ?? [];
    return avoid?.size ? all.filter((v) => !avoid.has(v.nodeId)) : all;
  }

  private addView(r: Payload<typeof LoadReport>): void {
    const v: InstanceView = {
      instanceId: r.instanceId,
      nodeId: r.nodeId,
      region: r.region,
      model: r.model,
      pool: r.pool,
      state: r.state,
      kvUtilization: r.kvUtilization,
      kvCapacityTokens: r.kvCapacityTokens ?? 0,
      outstandingTokens: r.outstandingTokens,
      reportedAtMs: r.atMs,
      running: r.running,
      waiting: r.waiting,
      maxRunning: r.maxRunning,
      iwFastWaitMs: r.iwFastWaitMs,
      iwNormalWaitMs: r.iwNormalWaitMs,
      iwRps: r.iwRps,
      iwCapacityRps: r.iwCapacityRps,
      routedTokens: 0,
      routedRequests: 0,
      aliveUntilMs: this.nodeAliveUntil.get(r.nodeId),
    };
    this.views.set(r.instanceId, v);
    const k = this.key(r.model, r.region, r.pool);
    const list = this.byEndpoint.get(k);
    if (list) list.push(v);
    else this.byEndpoint.set(k, [v]);
  }

  private removeView(v: InstanceView): void {
    const list = this.byEndpoint.get(this.key(v.model, v.region, v.pool));
    if (list) list.splice(list.indexOf(v), 1);
    this.views.delete(v.instanceId);
  }
}

/** A known instance's new report: its load replaces the old, and routing since the last report is reset. */
function refreshView(v: InstanceView, r: Payload<typeof LoadReport>): void {
  v.state = r.state;
  v.kvUtilization = r.kvUtilization;
  v.kvCapacityTokens = r.kvCapacityTokens ?? v.kvCapacityTokens;
  v.outstandingTokens = r.outstandingTokens;
  v.reportedAtMs = r.atMs;
  v.running = r.running;
  v.waiting = r.waiting;
  v.maxRunning = r.maxRunning;
  v.iwFastWaitMs = r.iwFastWaitMs;
  v.iwNormalWaitMs = r.iwNormalWaitMs;
  v.iwRps = r.iwRps;
  v.iwCapacityRps = r.iwCapacityRps;
  v.routedTokens = 0;
  v.routedRequests = 0;
}
