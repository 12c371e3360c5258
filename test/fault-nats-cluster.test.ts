import { describe, expect, it } from "vitest";
import { runLoad } from "../bench/load-core.js";

/**
 * Issue 18: one of three clustered nats-servers is SIGKILLed under load (bench/load-core.ts). The killed
 * server leads the SAGE_NIW stream (R3) and carries the connections of the router, the gateway, the region
 * agent and one node agent per model (a second router runs on another server, as deployments run them).
 * Every client fails over to the other two servers, the stream elects a new leader (4–10 s on
 * nats-server 2.9), the server is started again on its ports and store and catches up as a current replica.
 *
 * Asserted: every batch job completes — including those accepted while SAGE_NIW had no leader — and every
 * non-streamed completion is answered; the only errors are typed `503 overloaded` answers (a routing
 * request or its reply was inside the dead server) and they stay rare; KV written before the kill reads
 * back. Not guaranteed yet: a streamed chat in flight at the kill can lose chunks that were inside the dead
 * server and end short or hang (the gateway does not check the chunks' `seq`: docs/reliability.md, known
 * gaps) — at most 2 such are tolerated here, and the four long probe streams across the kill are measured.
 * The longer profile is `npm run bench:nats` (bench/nats-cluster.ts).
 */
describe("fault: one of three nats-servers SIGKILLed under load", () => {
  it("completes every batch job and every completion not in flight at the kill, keeps KV (R3), fails clients over, and the server rejoins", async () => {
    const r = await runLoad({
      durationS: 16,
      rate: 15,
      seed: 18,
      natsServers: 3,
      natsFault: { killAtS: 5, restartAfterS: 3 },
      // A stream whose chunks died with the server hangs (known gap): counted lost after 20 s.
      requestTimeoutMs: 20_000,
    });
    const f = r.nats!;
    console.log(
      JSON.stringify({ sent: r.sent, completed: r.completed, lost: r.lost, errors: r.errors, nats: f }),
    );
    expect(f.niwReplicas).toBe(3);
    expect(f.kvReplicas).toBe(3);
    expect(f.clientsOnKilled).toEqual(expect.arrayContaining(["router", "gateway", "region-agent"]));
    // Lost may only be streamed chats in flight at the kill (their chunks were inside the dead server: the
    // known gap in docs/reliability.md; bench/nats-cluster.ts lost 1 of 1,254 requests this way). Every batch
    // job answered 202 and every non-streamed completion must complete.
    // Also tolerated (same gap): an interactive request routed within a second after the kill whose
    // InferenceRequest (router → node, at most once) was inside the dead server — it waits for its first
    // token until the client gives up (seen once in CI: an iw-normal request sent 0.2 s after the kill).
    const atKill = (e: string) => {
      const m = /^iw-(fast|normal) \(sent at ([0-9.]+) s\)/.exec(e);
      return m !== null && Number(m[2]) >= 5 && Number(m[2]) <= 6;
    };
    expect(r.lostExamples.filter((e) => !/^iw-fast|^stream ended/.test(e) && !atKill(e))).toEqual([]);
    expect(r.lost).toBeLessThanOrEqual(2);
    // A batch job answered 202 that never completes counts as lost (and is no stream). Before
    // NatsBus.durablePublish retried a stream without a leader, 14–18 of 48 jobs were lost here.
    const sent = r.sent["iw-fast"] + r.sent["iw-normal"] + r.sent.niw;
    expect(Object.keys(r.errors).filter((k) => k !== "503")).toEqual([]);
    expect(r.errors["503"] ?? 0).toBeLessThanOrEqual(Math.ceil(0.05 * sent));
    for (const k of ["iw-fast", "iw-normal", "niw"] as const) expect(r.sent[k]).toBeGreaterThan(20);
    // The failover gap is measured on streams with tokens on both sides of the kill. A stream whose chunks
    // died with the server gets none after it (the known gap), so not all four probes need count: seen in
    // CI with 3 of them (all four hung).
    expect(f.streamsAcrossKill).toBeGreaterThanOrEqual(1);
    expect(f.kvIntact).toBe(true);
  }, 120_000);
});
