import { NatsBus } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import {
  envelope,
  InferenceChunk,
  InferenceRequest,
  LoadReport,
  NodeCommand,
  type Payload,
  RequestDone,
  RouteRequest,
  RunCheck,
  validateReply,
} from "@sageserve/protocol";
import { RouterActor } from "@sageserve/router";
import { freePort, WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";

const bin = new URL("../packages/cli/bin/sageserve.js", import.meta.url).pathname;

/**
 * A node agent running a real engine-emulator process (the `sageserve emulator` CLI), over a real
 * nats-server: load reports from the engine's metrics, a routed request streamed back token by token,
 * a warm model swap by engine restart, and failure detection when the engine dies.
 */
describe("node agent with an engine emulator process, over NATS", () => {
  let fx: NatsFixture;
  let agent: NodeAgentActor;
  let client: NatsBus;
  let router: RouterActor;
  /** Ask the router where a request for `model` goes: the node id, or "held" when no instance serves it. */
  const routeOf = async (model: string): Promise<string> => {
    const m = await client.request(
      RouteRequest.subject.build({ region: "westus", model }),
      envelope(RouteRequest, {
        ...RouteRequest.sample(),
        requestId: `probe-${model}-${Date.now()}`,
        model,
        originRegion: "westus",
        tier: "iw-fast",
        maxOutputTokens: 1,
      }),
      { timeoutMs: 5_000 },
    );
    const d = m.data();
    const r = d.ok ? validateReply(RouteRequest, d.value) : d;
    if (!r.ok) return r.error.code;
    return r.value.nodeId ?? "held";
  };
  const clock = new WallClock({ seed: 1 });
  const loads: Payload<typeof LoadReport>[] = [];

  beforeAll(async () => {
    fx = await startNats();
    const port = await freePort();
    agent = new NodeAgentActor(
      { bus: await NatsBus.connect({ servers: fx.url, name: "node-agent" }), clock },
      {
        nodeId: "n1",
        region: "westus",
        gpuType: "h100",
        engine: {
          url: `http://127.0.0.1:${port}`,
          kind: "vllm",
          model: "llama3.2-3b",
          command: [
            process.execPath,
            bin,
            "emulator",
            "--model",
            "{model}",
            "--port",
            "{port}",
            "--speedup",
            "20",
          ],
          kvCapacityTokens: 5_000_000,
        },
        loadReportMs: 200,
        heartbeatMs: 500,
      },
    );
    client = await NatsBus.connect({ servers: fx.url, name: "client" });
    router = new RouterActor(
      { bus: await NatsBus.connect({ servers: fx.url, name: "router" }), clock },
      { regions: ["westus"], models: ["llama3.2-3b", "llama3.1-8b"], maxPendingMs: 1_000 },
    );
    await router.start();
    client.subscribe(LoadReport.subject.pattern({ region: "westus" }), (m) => {
      const d = m.data();
      if (d.ok) loads.push(d.value as Payload<typeof LoadReport>);
    });
    await agent.start();
    for (let i = 0; i < 100 && agent.currentState !== "serving"; i++) await clock.sleep(100);
    // …and its serving load report has reached the listeners.
    for (let i = 0; i < 50 && !loads.some((l) => l.state === "serving"); i++) await clock.sleep(50);
  }, 30_000);

  afterAll(async () => {
    await agent?.stop();
    await agent?.bus.close();
    await router?.stop();
    await router?.bus.close();
    await client?.close();
    clock.cancelAll();
    await fx?.stop();
  });

  it("reports the engine serving, with load read from its vLLM metrics", () => {
    expect(agent.currentState).toBe("serving");
    const serving = loads.filter((l) => l.state === "serving");
    expect(serving.length).toBeGreaterThan(0);
    expect(serving.at(-1)).toMatchObject({ model: "llama3.2-3b", nodeId: "n1", kvCapacityTokens: 5_000_000 });
  });

  it("streams a routed request back over NATS, token by token, then done", async () => {
    const chunks: Payload<typeof InferenceChunk>[] = [];
    client.subscribe(InferenceChunk.subject.build({ listener: "direct", request: "req-1" }), (m) => {
      const d = m.data();
      if (d.ok) chunks.push(d.value as Payload<typeof InferenceChunk>);
    });
    await client.flush();
    const reply = await client.request(
      InferenceRequest.subject.build({ node: "n1" }),
      envelope(InferenceRequest, {
        ...InferenceRequest.sample(),
        requestId: "req-1",
        model: "llama3.2-3b",
        instanceId: agent.instanceId,
        maxOutputTokens: 8,
        arrivalMs: Date.now(),
      }),
      { timeoutMs: 5_000 },
    );
    const d = reply.data();
    const r = d.ok ? validateReply(InferenceRequest, d.value) : d;
    expect(r.ok && r.value).toMatchObject({ accepted: true, streamSubject: "sage.stream.direct.req-1" });
    for (let i = 0; i < 100 && !chunks.some((c) => c.done); i++) await clock.sleep(50);
    expect(chunks.filter((c) => !c.done)).toHaveLength(8);
    expect(chunks.map((c) => c.seq)).toEqual([...chunks.keys()]);
    expect(chunks.at(-1)).toMatchObject({ done: true, finishReason: "length" });
  });

  it("a request sent again while it runs (a job queued again by a region agent that presumed its hand-off lost) is acknowledged and not run twice", async () => {
    const chunks: Payload<typeof InferenceChunk>[] = [];
    client.subscribe(InferenceChunk.subject.build({ listener: "direct", request: "req-dup" }), (m) => {
      const d = m.data();
      if (d.ok) chunks.push(d.value as Payload<typeof InferenceChunk>);
    });
    await client.flush();
    const send = () =>
      client.request(
        InferenceRequest.subject.build({ node: "n1" }),
        envelope(InferenceRequest, {
          ...InferenceRequest.sample(),
          requestId: "req-dup",
          model: "llama3.2-3b",
          instanceId: agent.instanceId,
          maxOutputTokens: 24,
          arrivalMs: Date.now(),
        }),
        { timeoutMs: 5_000 },
      );
    const replies = await Promise.all([send(), send()]);
    for (const reply of replies) {
      const d = reply.data();
      const r = d.ok ? validateReply(InferenceRequest, d.value) : d;
      expect(r.ok && r.value).toMatchObject({ accepted: true, streamSubject: "sage.stream.direct.req-dup" });
    }
    for (let i = 0; i < 200 && !chunks.some((c) => c.done); i++) await clock.sleep(50);
    await clock.sleep(300);
    // One run: 24 tokens and one end, numbered once.
    expect(chunks.filter((c) => !c.done)).toHaveLength(24);
    expect(chunks.filter((c) => c.done)).toHaveLength(1);
    expect(chunks.map((c) => c.seq)).toEqual([...chunks.keys()]);
  });

  it("answers RunCheck: a batch request it runs, one it finished (with its outcome), and one it never received", async () => {
    const ask = async (requestIds: string[]) => {
      const m = await client.request(
        RunCheck.subject.build({ node: "n1" }),
        envelope(RunCheck, { requestIds }),
        {
          timeoutMs: 5_000,
        },
      );
      const d = m.data();
      const r = d.ok ? validateReply(RunCheck, d.value) : d;
      if (!r.ok) throw r.error;
      return r.value;
    };
    const batch = (requestId: string, maxOutputTokens: number) =>
      client.publish(
        InferenceRequest.subject.build({ node: "n1" }),
        envelope(InferenceRequest, {
          ...InferenceRequest.sample(),
          requestId,
          tier: "niw",
          model: "llama3.2-3b",
          instanceId: agent.instanceId,
          maxOutputTokens,
          arrivalMs: Date.now(),
          deadlineMs: Date.now() + 3_600_000,
        }),
      );
    const done: string[] = [];
    client.subscribe(RequestDone.subject.build({ region: "westus", model: "llama3.2-3b" }), (m) => {
      const d = m.data();
      if (d.ok) done.push((d.value as Payload<typeof RequestDone>).requestId);
    });
    await client.flush();
    batch("niw-short", 2);
    batch("niw-long", 400);
    for (let i = 0; i < 100 && !done.includes("niw-short"); i++) await clock.sleep(50);
    const a = await ask(["niw-short", "niw-long", "niw-never"]);
    expect(a.running).toEqual(["niw-long"]);
    expect(a.done).toEqual([{ requestId: "niw-short", outcome: "ok" }]);
  });

  it("refuses requests for another model with a typed error, and swaps the model by restarting the engine", async () => {
    const wrong = await client.request(
      InferenceRequest.subject.build({ node: "n1" }),
      envelope(InferenceRequest, {
        ...InferenceRequest.sample(),
        requestId: "req-2",
        model: "llama3.1-8b",
        instanceId: agent.instanceId,
      }),
      { timeoutMs: 5_000 },
    );
    const wd = wrong.data();
    const wr = wd.ok ? validateReply(InferenceRequest, wd.value) : wd;
    expect(wr.ok ? "ok" : (wr.error.details as { code: string }).code).toBe("UNKNOWN_MODEL");

    const cmd = async (action: "make-spot" | "swap", model?: string) => {
      const m = await client.request(
        NodeCommand.subject.build({ node: "n1" }),
        envelope(NodeCommand, {
          commandId: `c-${action}`,
          action,
          ...(model ? { model } : {}),
          issuedAtMs: Date.now(),
        }),
        { timeoutMs: 5_000 },
      );
      const x = m.data();
      return x.ok ? validateReply(NodeCommand, x.value) : x;
    };
    expect(await routeOf("llama3.2-3b")).toBe("n1");
    expect(await cmd("swap", "llama3.1-8b")).toMatchObject({ ok: true, value: { accepted: false } }); // must drain first
    expect(await cmd("make-spot")).toMatchObject({ ok: true, value: { accepted: true } });
    for (let i = 0; i < 50 && agent.currentState !== "spot"; i++) await clock.sleep(50);
    expect(agent.currentState).toBe("spot");
    expect(await cmd("swap", "llama3.1-8b")).toMatchObject({
      ok: true,
      value: { accepted: true, state: "swapping" },
    });
    for (let i = 0; i < 150 && agent.currentState !== "serving"; i++) await clock.sleep(100);
    expect(agent.currentState).toBe("serving");
    expect(agent.currentModel).toBe("llama3.1-8b");
    // A fresh connection: the pool may still hold a keep-alive socket to the engine process that was replaced.
    const models = (await (
      await fetch(`${agent.engineUrl}/v1/models`).catch(() => fetch(`${agent.engineUrl}/v1/models`))
    ).json()) as {
      data: { id: string }[];
    };
    expect(models.data[0]!.id).toBe("llama3.1-8b");
    // The router has seen the swap in the node's load reports: the new model goes there, the old one no longer.
    await clock.sleep(300);
    expect(await routeOf("llama3.1-8b")).toBe("n1");
    expect(await routeOf("llama3.2-3b")).toBe("held");
  }, 30_000);

  it("keeps its liveness in NATS KV", async () => {
    await clock.sleep(600);
    const entry = (await client.kvGet("sage-nodes", "n1")) as { nodeId: string; state: string } | undefined;
    expect(entry).toMatchObject({ nodeId: "n1", region: "westus" });
  });

  it("reports the instance failed when the engine process dies", async () => {
    agent.engineProcess!.kill("SIGKILL");
    for (let i = 0; i < 50 && agent.currentState !== "failed"; i++) await clock.sleep(100);
    expect(agent.currentState).toBe("failed");
    for (let i = 0; i < 20 && loads.at(-1)?.state !== "failed"; i++) await clock.sleep(100);
    expect(loads.at(-1)?.state).toBe("failed");
  }, 15_000);
});
