/**
 * Which nodes are gone, from their heartbeats (a pure rule; the gateway feeds it and asks it).
 *
 * A node is lost for a request dispatched at `sinceMs` when it has been silent for its heartbeat TTL since
 * the later of its last heartbeat and the dispatch, or when it has restarted since the dispatch: a node
 * agent counts its heartbeats' `seq` from 1 in every run, so a `seq` that does not grow means a new run of
 * the same node id (a host rebooted, a region agent restarted and named its nodes again) that never saw the
 * requests sent to the one before — they must be routed again, not waited on until the first-token timeout.
 */
export class NodeLiveness {
  private readonly nodes = new Map<
    string,
    { atMs: number; ttlMs: number; seq: number; restartedAtMs?: number }
  >();

  constructor(
    /** TTL of a node never heard from (three 5-second heartbeats). */
    private readonly defaultTtlMs = 15_000,
  ) {}

  heard(hb: { nodeId: string; ttlMs: number; seq: number }, nowMs: number): void {
    const prev = this.nodes.get(hb.nodeId);
    const restartedAtMs = prev && hb.seq <= prev.seq ? nowMs : prev?.restartedAtMs;
    this.nodes.set(hb.nodeId, {
      atMs: nowMs,
      ttlMs: hb.ttlMs,
      seq: hb.seq,
      ...(restartedAtMs === undefined ? {} : { restartedAtMs }),
    });
  }

  /** Lost for a request dispatched to `nodeId` at `sinceMs`: silent past its TTL, or restarted since. */
  lost(nodeId: string, sinceMs: number, nowMs: number): boolean {
    const seen = this.nodes.get(nodeId);
    if (seen?.restartedAtMs !== undefined && seen.restartedAtMs >= sinceMs) return true;
    const from = Math.max(sinceMs, seen?.atMs ?? 0);
    return nowMs > from + (seen?.ttlMs ?? this.defaultTtlMs);
  }
}
