import { describe, expect, it } from "vitest";
import { NodeLiveness } from "./liveness.js";

describe("NodeLiveness", () => {
  const hb = (seq: number, ttlMs = 6_000) => ({ nodeId: "n1", ttlMs, seq });

  it("a node heard within its TTL is alive; silent past the TTL since the later of heartbeat and dispatch, lost", () => {
    const l = new NodeLiveness();
    l.heard(hb(1), 1_000);
    expect(l.lost("n1", 2_000, 7_000)).toBe(false); // 5 s after the dispatch
    expect(l.lost("n1", 2_000, 8_000)).toBe(false); // exactly the TTL after the dispatch
    expect(l.lost("n1", 2_000, 8_001)).toBe(true);
    l.heard(hb(2), 7_500);
    expect(l.lost("n1", 2_000, 13_000)).toBe(false);
    expect(l.lost("n1", 2_000, 13_501)).toBe(true);
  });

  it("a node never heard from gets the default TTL from the dispatch", () => {
    const l = new NodeLiveness(15_000);
    expect(l.lost("n9", 1_000, 16_000)).toBe(false);
    expect(l.lost("n9", 1_000, 16_001)).toBe(true);
  });

  it("a node that restarted after the dispatch (its heartbeat seq starts again) is lost for that request at once", () => {
    const l = new NodeLiveness();
    for (let s = 1; s <= 40; s++) l.heard(hb(s), s * 2_000);
    const dispatched = 81_000;
    // The old run dies; a new run of the same node id heartbeats from seq 1 within the TTL.
    l.heard(hb(1), 84_000);
    expect(l.lost("n1", dispatched, 84_000)).toBe(true);
    l.heard(hb(2), 86_000);
    expect(l.lost("n1", dispatched, 86_000)).toBe(true);
    // A request dispatched to the new run is not affected by the restart before it.
    expect(l.lost("n1", 85_000, 86_000)).toBe(false);
  });

  it("a repeated seq counts as a restart too; a growing seq never does", () => {
    const l = new NodeLiveness();
    l.heard(hb(5), 1_000);
    l.heard(hb(7), 2_000); // a heartbeat lost in between: still the same run
    expect(l.lost("n1", 1_500, 2_000)).toBe(false);
    l.heard(hb(7), 3_000);
    expect(l.lost("n1", 1_500, 3_000)).toBe(true);
  });
});
