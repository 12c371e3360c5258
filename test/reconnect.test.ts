import { NatsBus, startNatsServer } from "@sageserve/nats";
import { Heartbeat } from "@sageserve/protocol";
import { Actor, type ActorContext, freePort, WallClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";

class Listener extends Actor {
  seqs: number[] = [];
  protected setup(): void {
    this.on(Heartbeat, { region: "r1" }, (hb) => {
      this.seqs.push(hb.seq);
    });
  }
}

class Beater extends Actor {
  seq = 0;
  protected setup(): void {
    this.every(50, () => {
      this.publish(
        Heartbeat,
        { region: "r1", node: "n1" },
        { ...Heartbeat.sample(), region: "r1", seq: ++this.seq, atMs: this.clock.now() },
      );
    });
  }
}

describe("live adapter resilience", () => {
  // Restarting needs a server of our own, whatever NATS_URL says: the test always spawns one, and a
  // machine without the nats-server binary fails it with the install hint instead of skipping (issue 19).
  it("actors keep talking after the nats-server restarts (reconnect, re-subscribe)", async () => {
    let server = await startNatsServer();
    const port = server.port;
    const clock = new WallClock({ seed: 1 });
    const statuses: string[] = [];
    const ctx = async (name: string): Promise<ActorContext> => ({
      bus: await NatsBus.connect({ servers: server.url, name, onStatus: (s) => statuses.push(s.type) }),
      clock,
    });
    const listener = new Listener(await ctx("listener"), { role: "listener", id: "l1" });
    const beater = new Beater(await ctx("beater"), { role: "beater", id: "b1" });
    try {
      await listener.start();
      await beater.start();
      await clock.sleep(300);
      const before = listener.seqs.length;
      expect(before).toBeGreaterThan(0);

      await server.stop();
      await clock.sleep(300);
      server = await startNatsServer({ port });
      // Reconnect wait is 250 ms ± jitter; give it a few rounds.
      for (let i = 0; i < 60 && listener.seqs.length <= before + 3; i++) await clock.sleep(100);

      expect(listener.seqs.length).toBeGreaterThan(before + 3);
      expect(statuses).toContain("disconnect");
      expect(statuses).toContain("reconnect");
      // Order is preserved across the outage for what was delivered.
      const sorted = [...listener.seqs].sort((a, b) => a - b);
      expect(listener.seqs).toEqual(sorted);
    } finally {
      await beater.stop();
      await listener.stop();
      await beater.bus.close();
      await listener.bus.close();
      clock.cancelAll();
      await server.stop();
    }
  });

  it("a bad JetStream replica setting is a typed CONFIG error, and the connection it opened is closed", async () => {
    const httpPort = await freePort();
    const server = await startNatsServer({ httpPort });
    try {
      const err = await NatsBus.connect({ servers: server.url, name: "bad-replicas", jsReplicas: 7 }).then(
        () => undefined,
        (e: unknown) => e as { code?: string; message?: string },
      );
      expect(err?.code).toBe("CONFIG");
      expect(err?.message).toMatch(/replicas must be an integer from 1 to 5, not '7'/);
      // The server no longer lists the refused client (it was closed, not left dangling).
      let names: string[] = ["bad-replicas"];
      for (let i = 0; i < 50 && names.includes("bad-replicas"); i++) {
        const r = await fetch(`http://127.0.0.1:${httpPort}/connz`);
        names =
          ((await r.json()) as { connections?: { name?: string }[] }).connections?.map((c) => c.name ?? "") ??
          [];
        if (names.includes("bad-replicas")) await new Promise((r) => setTimeout(r, 50));
      }
      expect(names).not.toContain("bad-replicas");
    } finally {
      await server.stop();
    }
  });
});
