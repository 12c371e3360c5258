import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import { NodeAgentActor } from "@sageserve/node-agent";
import { type Payload, RequestDone } from "@sageserve/protocol";
import { RouterActor } from "@sageserve/router";
import { MemoryBroker, WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSse, until } from "./support/procs.js";

/**
 * The gateway's retry of requests lost before their first token, without NATS (the in-memory broker on
 * the wall clock) but with the real router, node agents and engine emulators: when an engine dies, the
 * node agent ends each of its requests with an error chunk — ENGINE_UNAVAILABLE before the first token,
 * ENGINE_FAILED after. The first kind is routed again, away from that node; the second reaches a
 * streaming client as an OpenAI error event. (test/fault-node-kill.test.ts covers a SIGKILLed node
 * agent, which says nothing: the gateway notices from its heartbeats.)
 */
describe("gateway retries requests whose engine died before their first token", () => {
  const clock = new WallClock({ seed: 5 });
  const broker = new MemoryBroker(clock);
  const emus: EmulatorHandle[] = [];
  const nodes: NodeAgentActor[] = [];
  let router: RouterActor;
  let gateway: GatewayActor;
  const done: Payload<typeof RequestDone>[] = [];

  beforeAll(async () => {
    for (const id of ["n1", "n2"]) {
      // One sequence at a time, ~40 ms a token: a long request holds the engine, the others queue.
      const emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", speedup: 0.05, maxBatch: 1 });
      emus.push(emu);
      nodes.push(
        new NodeAgentActor(
          { bus: broker.connect(id), clock },
          {
            nodeId: id,
            region: "westus",
            gpuType: "h100",
            engine: { url: emu.url, kind: "vllm", model: "llama3.2-3b", kvCapacityTokens: 200_000 },
            loadReportMs: 200,
            heartbeatMs: 500,
            drainTimeoutMs: 1_000,
          },
        ),
      );
    }
    router = new RouterActor(
      { bus: broker.connect("router"), clock },
      { regions: ["westus"], models: ["llama3.2-3b"] },
    );
    gateway = new GatewayActor(
      { bus: broker.connect("gateway"), clock },
      { region: "westus", models: ["llama3.2-3b"] },
    );
    broker.connect("watch").subscribe(RequestDone.subject.pattern(), (m) => {
      const d = m.data();
      if (d.ok) done.push(d.value as Payload<typeof RequestDone>);
    });
    await router.start();
    await gateway.start();
    await nodes[0]!.start(); // n1 alone first: everything goes there
    expect(await until(() => router.routableInstances().length === 1, 10_000)).toBe(true);
  });

  afterAll(async () => {
    for (const e of emus) await e.close();
    for (const a of [gateway, router, ...nodes]) await a.stop();
    clock.cancelAll();
  });

  const chat = (maxTokens: number, stream: boolean) =>
    fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "llama3.2-3b",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: maxTokens,
        stream,
      }),
    });

  it("routes the waiting requests again to the other node; the started stream ends with engine_failed", async () => {
    let first!: () => void;
    const started = new Promise<void>((r) => {
      first = r;
    });
    const long = chat(2_000, true).then((r) => readSse(r, () => first()));
    await started;
    const waiting = [chat(4, false), chat(4, true)];
    expect(await until(() => nodes[0]!["load"].waiting >= 2, 10_000)).toBe(true);
    await nodes[1]!.start();
    expect(await until(() => router.routableInstances().length === 2, 10_000)).toBe(true);
    await emus[0]!.close(); // n1's engine dies; its node agent lives on

    const ev = await long;
    expect(ev.at(-1)).toMatchObject({ error: { code: "engine_failed", type: "server_error" } });
    expect(ev).not.toContain("[DONE]");
    const plain = await waiting[0]!;
    expect(plain.status).toBe(200);
    const body = (await plain.json()) as {
      choices: { message: { content: string }; finish_reason: string }[];
    };
    expect(body.choices[0]!.finish_reason).toBe("length");
    expect(body.choices[0]!.message.content.trim().split(/\s+/)).toHaveLength(4);
    const streamed = await readSse(await waiting[1]!);
    expect(streamed.at(-1)).toBe("[DONE]");
    expect(gateway.retried).toBe(2);
    // n1 reported both as failed before the first token; n2 finished both retries.
    expect(await until(() => done.filter((d) => d.instanceId === "n2-i0").length === 2, 5_000)).toBe(true);
    expect(done.filter((d) => d.instanceId === "n2-i0").every((d) => d.outcome === "ok")).toBe(true);
    expect(done.filter((d) => d.instanceId === "n1-i0" && d.outcome === "failed")).toHaveLength(3);
  }, 30_000);

  it("answers 502 naming the cause when no attempt is left", async () => {
    // A gateway allowed a single attempt: a request queued on n2 when n2's engine dies is not retried.
    const single = new GatewayActor(
      { bus: broker.connect("gateway-1"), clock },
      { region: "westus", models: ["llama3.2-3b"], maxAttempts: 1 },
    );
    await single.start();
    try {
      const call = (max: number) =>
        fetch(`${single.url}/v1/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "llama3.2-3b", prompt: "x", max_tokens: max, stream: max > 100 }),
        });
      let first!: () => void;
      const started = new Promise<void>((r) => {
        first = r;
      });
      const long = call(2_000).then((r) => readSse(r, () => first()));
      await started;
      const queued = call(2);
      expect(await until(() => nodes[1]!["load"].waiting >= 1, 10_000)).toBe(true);
      await emus[1]!.close();
      const r = await queued;
      expect(r.status).toBe(502);
      expect(r.headers.get("retry-after")).toBe("1");
      const e = (await r.json()) as { error: { code: string; type: string; message: string } };
      expect(e.error).toMatchObject({ code: "engine_unavailable", type: "server_error" });
      expect(e.error.message).toMatch(/engine failed/);
      expect((await long).at(-1)).toMatchObject({ error: { code: "engine_failed" } });
      expect(single.retried).toBe(0);
    } finally {
      await single.stop();
    }
  }, 30_000);
});

describe("gateway, no instance anywhere", () => {
  it("answers 503 as soon as the router gives up on the request, not at the first-token timeout", async () => {
    const clock = new WallClock({ seed: 6 });
    const broker = new MemoryBroker(clock);
    const router = new RouterActor(
      { bus: broker.connect("router"), clock },
      { regions: ["westus"], models: ["llama3.2-3b"], maxPendingMs: 500 },
    );
    // A first-token timeout far beyond this test's: only the router's NO_CAPACITY chunk can end the request.
    const gateway = new GatewayActor(
      { bus: broker.connect("gateway"), clock },
      { region: "westus", models: ["llama3.2-3b"], firstTokenTimeoutMs: 600_000 },
    );
    await router.start();
    await gateway.start();
    try {
      const r = await fetch(`${gateway.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "llama3.2-3b", prompt: "x", max_tokens: 2 }),
      });
      expect(r.status).toBe(503);
      expect(r.headers.get("retry-after")).toBe("2");
      const e = (await r.json()) as { error: { code: string; message: string } };
      expect(e.error.code).toBe("overloaded");
      expect(e.error.message).toMatch(/no serving instance of llama3\.2-3b/);
      expect(gateway.retried).toBe(0);
      expect(router.rejected).toBe(1);
    } finally {
      await gateway.stop();
      await router.stop();
      clock.cancelAll();
    }
  }, 20_000);
});
