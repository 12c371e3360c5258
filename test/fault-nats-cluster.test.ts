import { describe, expect, it } from "vitest";
import { runLoad } from "../bench/load-core.js";

/**
 * Issue 18: one of three clustered nats-servers is SIGKILLed under load (bench/load-core.ts). The killed
 * server leads the SAGE_NIW stream (R3) and carries the connections of the router, the gateway, the region
 * agent and one node agent per model (a second router runs on another server, as deployments run them).
 * Every client fails over to the other two servers, the stream elects a new leader (4–10 s on
 * nats-server 2.9), the server is started again on its ports and store and catches up as a current replica.
 *
 * Asserted: every request is answered (none lost: no hang, no silent truncation among the load's
 * requests); every batch job completes — including those accepted while SAGE_NIW had no leader; the only
 * errors are typed `503 overloaded` answers (a routing request or its reply was inside the dead server)
 * and they stay rare; KV written before the kill reads back. Measured, not asserted: the four long
 * streams across the kill (core NATS loses the chunks that were inside the dead server, and the stream
 * protocol has no sequence numbers to notice: docs/reliability.md, known gaps).
 * The longer profile is `npm run bench:nats` (bench/nats-cluster.ts).
 */
describe("fault: one of three nats-servers SIGKILLed under load", () => {
  it("answers every request, completes every batch job, keeps KV (R3), fails clients over, and the server rejoins", async () => {
    const r = await runLoad({
      durationS: 16,
      rate: 15,
      seed: 18,
      natsServers: 3,
      natsFault: { killAtS: 5, restartAfterS: 3 },
    });
    const f = r.nats!;
    console.log(
      JSON.stringify({ sent: r.sent, completed: r.completed, lost: r.lost, errors: r.errors, nats: f }),
    );
    expect(f.niwReplicas).toBe(3);
    expect(f.kvReplicas).toBe(3);
    expect(f.clientsOnKilled).toEqual(expect.arrayContaining(["router", "gateway", "region-agent"]));
    expect(r.lostExamples).toEqual([]);
    expect(r.lost).toBe(0);
    // lost = 0 covers the batch jobs: a job answered 202 that never completes counts as lost. Before
    // NatsBus.durablePublish retried a stream without a leader, 14–18 of 48 jobs were lost here.
    const sent = r.sent["iw-fast"] + r.sent["iw-normal"] + r.sent.niw;
    expect(Object.keys(r.errors).filter((k) => k !== "503")).toEqual([]);
    expect(r.errors["503"] ?? 0).toBeLessThanOrEqual(Math.ceil(0.05 * sent));
    for (const k of ["iw-fast", "iw-normal", "niw"] as const) expect(r.sent[k]).toBeGreaterThan(20);
    expect(f.streamsAcrossKill).toBeGreaterThanOrEqual(4);
    expect(f.kvIntact).toBe(true);
  }, 120_000);
});
