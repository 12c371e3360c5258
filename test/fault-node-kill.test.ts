import { GatewayActor } from "@sageserve/gateway";
import { NatsBus } from "@sageserve/nats";
import { LoadReport, type Payload, RequestDone } from "@sageserve/protocol";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";
import { type NodeProcess, readSse, spawnNodeAgent, until } from "./support/procs.js";

/**
 * Issue 9, faults 1 and 4, against real processes: `sageserve node-agent` processes (each running an
 * engine-emulator process) over a real nats-server, with the router and the gateway in this process so
 * their views can be read. A node agent is SIGKILLed while it streams one request and holds three more
 * in its engine's queue (before their first token): those three are routed again and complete, the
 * stream ends with a typed error event, and the router stops routing to the node within its heartbeat
 * TTL. Then the second westus node dies too (westus cut off): westus traffic completes in eastus.
 */
describe("fault: a node agent SIGKILLed mid-stream; a region cut off", () => {
  let fx: NatsFixture;
  const clock = new WallClock({ seed: 19 });
  const buses: NatsBus[] = [];
  const nodes: NodeProcess[] = [];
  let router: RouterActor;
  let gateway: GatewayActor;
  const loads = new Map<string, Payload<typeof LoadReport>>();
  const done: Payload<typeof RequestDone>[] = [];
  const MODEL = "llama3.2-3b";
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  // One sequence at a time and ~40 ms a token: a long request holds the engine, the others queue.
  const node = async (nodeId: string, region: string) => {
    const n = await spawnNodeAgent({
      natsUrl: fx.url,
      nodeId,
      region,
      model: MODEL,
      speedup: 0.05,
      maxNumSeqs: 1,
    });
    nodes.push(n);
    const serving = await until(
      () =>
        loads.get(n.instanceId)?.state === "serving" &&
        router.routableInstances(MODEL).some((i) => i.instanceId === n.instanceId),
      40_000,
    );
    expect(serving, `${nodeId} serving and routable`).toBe(true);
    return n;
  };
  const chat = (maxTokens: number, stream: boolean, region = "westus") =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-sage-tier": "fast", "x-sage-region": region },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: maxTokens,
        stream,
      }),
    });
  type Chunk = {
    choices?: { delta: { content?: string }; finish_reason: string | null }[];
    error?: { code: string; type: string };
  };
  /** A request's outcome as the client sees it: HTTP status, tokens received, finish reason or error code. */
  const outcome = async (r: Response) => {
    if (r.headers.get("content-type") === "text/event-stream") {
      const ev = (await readSse(r)) as (Chunk | "[DONE]")[];
      const chunks = ev.filter((e): e is Chunk => e !== "[DONE]");
      return {
        status: r.status,
        tokens: chunks.filter((c) => c.choices?.[0]?.delta.content).length,
        finish: chunks.at(-1)?.choices?.[0]?.finish_reason ?? chunks.at(-1)?.error?.code,
        doneMarker: ev.at(-1) === "[DONE]",
      };
    }
    const b = (await r.json()) as { choices?: { message: { content: string }; finish_reason: string }[] };
    return {
      status: r.status,
      tokens: b.choices ? b.choices[0]!.message.content.trim().split(/\s+/).length : 0,
      finish: b.choices?.[0]?.finish_reason,
      doneMarker: false,
    };
  };

  beforeAll(async () => {
    fx = await startNats();
    router = new RouterActor(await ctx("router"), { regions: ["westus", "eastus"], models: [MODEL] });
    gateway = new GatewayActor(await ctx("gateway"), {
      region: "westus",
      regions: ["eastus"],
      models: [MODEL],
    });
    await router.start();
    await gateway.start();
    const watch = (await ctx("watcher")).bus;
    watch.subscribe(LoadReport.subject.pattern(), (m) => {
      const d = m.data();
      if (d.ok)
        loads.set((d.value as Payload<typeof LoadReport>).instanceId, d.value as Payload<typeof LoadReport>);
    });
    watch.subscribe(RequestDone.subject.pattern(), (m) => {
      const d = m.data();
      if (d.ok) done.push(d.value as Payload<typeof RequestDone>);
    });
    await watch.flush();
  }, 30_000);

  afterAll(async () => {
    for (const n of nodes) await n.stop();
    await gateway?.stop();
    await router?.stop();
    for (const b of buses) await b.close();
    clock.cancelAll();
    await fx?.stop();
  }, 30_000);

  it("retries requests waiting for their first token on another node, ends the started stream with a typed error, and drops the node from routing", async () => {
    const a = await node("westus-a", "westus");
    // A long stream starts on westus-a (the only instance)…
    let firstToken!: () => void;
    const started = new Promise<void>((r) => {
      firstToken = r;
    });
    const longStream = chat(2_000, true).then(async (r) => {
      expect(r.status).toBe(200);
      return (await readSse(r, () => firstToken())) as (Chunk | "[DONE]")[];
    });
    await started;
    // …and three more requests (two streamed, one not) wait in its engine's queue, before their first token.
    const waiting = [chat(6, true), chat(6, false), chat(6, true)].map((p) => p.then(outcome));
    expect(await until(() => (loads.get(a.instanceId)?.waiting ?? 0) >= 3, 20_000)).toBe(true);
    // A second westus node comes up; then westus-a's node agent is SIGKILLed.
    const b = await node("westus-b", "westus");
    expect(done.filter((d) => d.instanceId === a.instanceId)).toHaveLength(0);
    await a.kill();
    const killedAt = Date.now();

    // The router stops routing to westus-a once its heartbeats stop (TTL 3 × 500 ms), long before its last
    // load report would go stale (30 s).
    // Waited for up to the stale-report bound, so the time check below can fail: within 10 s (the TTL
    // plus slack for a loaded machine), not the 30 s a stale load report would take.
    expect(
      await until(() => !router.routableInstances(MODEL).some((i) => i.nodeId === a.nodeId), 30_000),
    ).toBe(true);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(router.routableInstances(MODEL).map((i) => i.nodeId)).toEqual(["westus-b"]);

    // The stream that had started ends with an OpenAI error event naming the cause, not a hang, no [DONE].
    const ev = await longStream;
    const tokens = ev.filter((e) => e !== "[DONE]" && (e as Chunk).choices?.[0]?.delta.content);
    expect(tokens.length).toBeGreaterThan(0);
    expect(ev.at(-1)).toMatchObject({ error: { code: "node_lost", type: "server_error" } });
    expect(ev).not.toContain("[DONE]");

    // The three that had not started are routed again, to westus-b, and complete in full.
    const results = await Promise.all(waiting);
    expect(results).toEqual([
      { status: 200, tokens: 6, finish: "length", doneMarker: true },
      { status: 200, tokens: 6, finish: "length", doneMarker: false },
      { status: 200, tokens: 6, finish: "length", doneMarker: true },
    ]);
    expect(gateway.retried).toBe(3);
    expect(await until(() => done.filter((d) => d.instanceId === b.instanceId).length >= 3, 10_000)).toBe(
      true,
    );
    const retriedDone = done.filter((d) => d.instanceId === b.instanceId);
    expect(retriedDone.every((d) => d.outcome === "ok" && /-a1$/.test(d.requestId))).toBe(true);
  }, 80_000);

  it("cut off westus (its last node dies): westus traffic spills to eastus and completes", async () => {
    const c = await node("eastus-c", "eastus");
    const b = nodes.find((n) => n.nodeId === "westus-b")!;
    // westus-b holds a stream and a queued request when it dies.
    let firstToken!: () => void;
    const started = new Promise<void>((r) => {
      firstToken = r;
    });
    const longStream = chat(2_000, true).then(
      async (r) => (await readSse(r, () => firstToken())) as unknown[],
    );
    await started;
    const queued = chat(5, false).then(outcome);
    expect(await until(() => (loads.get(b.instanceId)?.waiting ?? 0) >= 1, 20_000)).toBe(true);
    await b.kill();
    expect((await longStream).at(-1)).toMatchObject({ error: { code: "node_lost" } });
    expect(await queued).toMatchObject({ status: 200, tokens: 5, finish: "length" });
    expect(
      await until(() => router.routableInstances(MODEL).every((i) => i.region === "eastus"), 20_000),
    ).toBe(true);
    // Fresh westus traffic, streamed and not, goes to eastus and completes.
    const fresh = await Promise.all(
      [chat(4, true), chat(4, false), chat(4, true)].map((p) => p.then(outcome)),
    );
    for (const r of fresh) expect(r).toMatchObject({ status: 200, tokens: 4, finish: "length" });
    expect(await until(() => done.filter((d) => d.instanceId === c.instanceId).length >= 4, 10_000)).toBe(
      true,
    );
    expect(
      done
        .filter((d) => d.instanceId === c.instanceId)
        .every((d) => d.region === "eastus" && d.outcome === "ok"),
    ).toBe(true);
  }, 80_000);
});
