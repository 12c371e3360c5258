import { DashboardActor } from "@sageserve/dashboard";
import { chatPromptTokens, type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import { NatsBus } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { type Payload, RequestDone } from "@sageserve/protocol";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";

/**
 * OpenAI compatibility as users meet it (issue 17): the official `openai` SDK against a real gateway →
 * router → node agent → engine emulator on a real nats-server. Cancellation, usage, tools, logprobs,
 * seed, stop, model retrieval, batch + stream, and the request counter.
 */
describe("the official openai SDK against SageServe", () => {
  let fx: NatsFixture;
  let emu: EmulatorHandle;
  const clock = new WallClock({ seed: 17 });
  const buses: NatsBus[] = [];
  let gateway: GatewayActor;
  /** A second replica of the gateway: quotas are shared through NATS. */
  let gatewayB: GatewayActor;
  let node: NodeAgentActor;
  let router: RouterActor;
  let client: OpenAI;
  let dashboard: DashboardActor;
  const done: Payload<typeof RequestDone>[] = [];
  const HEARTBEAT_MS = 1_000;
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  /** Wait for a condition, polling; fails with `what` when it does not hold within `ms`. */
  const until = async (what: string, cond: () => boolean, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
      await clock.sleep(10);
    }
  };

  beforeAll(async () => {
    fx = await startNats();
    // Real-time speed: a 3,000-token answer takes far longer than the test waits for it to stop.
    emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", speedup: 1 });
    node = new NodeAgentActor(await ctx("node"), {
      nodeId: "w1",
      region: "westus",
      gpuType: "h100",
      engine: { url: emu.url, kind: "vllm", model: "llama3.2-3b" },
      loadReportMs: 200,
      heartbeatMs: HEARTBEAT_MS,
    });
    // llama3.1-8b is offered but served nowhere: the router holds its requests.
    router = new RouterActor(await ctx("router"), {
      regions: ["westus"],
      models: ["llama3.2-3b", "llama3.1-8b"],
    });
    const gatewayOptions = {
      region: "westus",
      models: ["llama3.2-3b", "llama3.1-8b"],
      apiKeys: {
        "sk-test": { name: "sdk" },
        "sk-quota": { name: "metered", requestsPerMinute: 4, tokensPerMinute: 400 },
      },
    };
    gateway = new GatewayActor(await ctx("gateway"), gatewayOptions);
    gatewayB = new GatewayActor(await ctx("gateway-b"), gatewayOptions);
    // The observer behind the dashboard and `sageserve status`: SLO attainment per tier.
    dashboard = new DashboardActor(await ctx("dashboard"), { port: 0, summaryMs: 0 });
    for (const a of [router, node, gateway, gatewayB, dashboard]) await a.start();
    const watcher = await ctx("watcher");
    watcher.bus.subscribe(RequestDone.subject.pattern({ region: "westus" }), (m) => {
      const d = m.data();
      if (d.ok) done.push(d.value as Payload<typeof RequestDone>);
    });
    await until("the node serves", () => node.currentState === "serving");
    client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "sk-test", maxRetries: 0 });
    // A first request through: the router knows the instance once this is answered.
    await until("a load report reached the router", () => router.stats().received > 0);
    await client.completions.create({ model: "llama3.2-3b", prompt: "warm up", max_tokens: 1 });
  }, 30_000);

  afterAll(async () => {
    for (const a of [gateway, gatewayB, dashboard, node, router]) await a?.stop();
    for (const b of buses) await b.close();
    await emu?.close();
    clock.cancelAll();
    await fx?.stop();
  });

  const doneFor = (pred: (d: Payload<typeof RequestDone>) => boolean) => done.find(pred);

  it("lists and retrieves models; an unknown one is a NotFoundError", async () => {
    const list = await client.models.list();
    expect(list.data.map((m) => m.id)).toEqual(["llama3.2-3b", "llama3.1-8b"]);
    expect(await client.models.retrieve("llama3.2-3b")).toMatchObject({ id: "llama3.2-3b", object: "model" });
    await expect(client.models.retrieve("gpt-9")).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  it("streams a chat completion with include_usage: a last chunk with no choices and the engine's prompt count", async () => {
    const messages = [
      { role: "system" as const, content: "You are terse." },
      { role: "user" as const, content: "Name three colours, please." },
    ];
    const stream = await client.chat.completions.create({
      model: "llama3.2-3b",
      messages,
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    // The engine's count (its chat template), not the gateway's chars ÷ 4 estimate.
    const enginePrompt = chatPromptTokens({ model: "llama3.2-3b", messages });
    expect(enginePrompt).not.toBe(Math.ceil(messages.map((m) => m.content).join(" ").length / 4));
    expect(last.usage).toEqual({
      prompt_tokens: enginePrompt,
      completion_tokens: 6,
      total_tokens: enginePrompt + 6,
    });
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe("length");
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBe(6);
  });

  it("streams a legacy completion with include_usage, and no usage chunk when not asked", async () => {
    const withUsage = await client.completions.create({
      model: "llama3.2-3b",
      prompt: "x".repeat(400),
      max_tokens: 4,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const c of withUsage) chunks.push(c);
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: 100, completion_tokens: 4, total_tokens: 104 });
    const without = await client.completions.create({
      model: "llama3.2-3b",
      prompt: "hello",
      max_tokens: 3,
      stream: true,
    });
    const plain = [];
    for await (const c of without) plain.push(c);
    expect(plain.every((c) => !c.usage)).toBe(true);
    expect(plain.at(-1)!.choices[0]!.finish_reason).toBe("length");
  });

  const tools = [
    {
      type: "function" as const,
      function: {
        name: "get_weather",
        description: "Weather in a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      },
    },
  ];

  it("passes tools through to the engine and returns its tool call (non-streamed)", async () => {
    const r = await client.chat.completions.create({
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools,
      tool_choice: "required",
      max_tokens: 64,
    });
    const choice = r.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    const call = choice.message.tool_calls![0]!;
    expect(call.type).toBe("function");
    if (call.type !== "function") throw new Error("not a function call");
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: expect.any(String) });
    expect(call.id).toMatch(/^call_/);
  });

  it("streams tool-call deltas the SDK assembles into the same call", async () => {
    const stream = client.chat.completions.stream({
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools,
      tool_choice: { type: "function", function: { name: "get_weather" } },
      max_tokens: 64,
      seed: 5,
    });
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]!.message.tool_calls![0]!;
    if (call.type !== "function") throw new Error("not a function call");
    expect(final.choices[0]!.finish_reason).toBe("tool_calls");
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual({ city: expect.any(String) });
    const again = await client.chat.completions.create({
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools,
      tool_choice: "required",
      max_tokens: 64,
      seed: 5,
    });
    // The same seed, the same call, streamed or not.
    expect(again.choices[0]!.message.tool_calls).toEqual([
      { id: call.id, type: "function", function: call.function },
    ]);
  });

  it("passes response_format through: a JSON schema gets a JSON answer", async () => {
    const r = await client.chat.completions.create({
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "Where is the Louvre?" }],
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "place",
          schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
        },
      },
      max_tokens: 64,
    });
    expect(r.choices[0]!.finish_reason).toBe("stop");
    expect(JSON.parse(r.choices[0]!.message.content!)).toEqual({ city: expect.any(String) });
  });

  it("passes logprobs, seed and stop through", async () => {
    const ask = (seed: number) =>
      client.chat.completions.create({
        model: "llama3.2-3b",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 5,
        seed,
        logprobs: true,
        top_logprobs: 2,
      });
    const [a, b, c] = await Promise.all([ask(11), ask(11), ask(12)]);
    expect(a.choices[0]!.message.content).toBe(b.choices[0]!.message.content);
    expect(a.choices[0]!.message.content).not.toBe(c.choices[0]!.message.content);
    const lp = a.choices[0]!.logprobs!.content!;
    expect(lp).toHaveLength(5);
    expect(lp.map((t) => t.token).join("")).toBe(a.choices[0]!.message.content);
    expect(lp[0]!.top_logprobs).toHaveLength(2);
    const words = a.choices[0]!.message.content!;
    // Stop at the third word: the answer ends before it, finish_reason stop.
    const third = words.split(" ").filter(Boolean)[2]!;
    const stopped = await client.chat.completions.create({
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 5,
      seed: 11,
      stop: [` ${third}`],
    });
    expect(stopped.choices[0]!.finish_reason).toBe("stop");
    expect(words.startsWith(stopped.choices[0]!.message.content!)).toBe(true);
    expect(stopped.choices[0]!.message.content!.length).toBeLessThan(words.length);
  });

  it("answers n choices, and one choice per prompt of a batch of prompts, streamed or not", async () => {
    const chat = await client.chat.completions.create({
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 4,
      n: 2,
      seed: 3,
    });
    expect(chat.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(chat.choices[0]!.message.content).not.toBe(chat.choices[1]!.message.content);
    expect(chat.usage!.completion_tokens).toBe(8);
    const batch = await client.completions.create({
      model: "llama3.2-3b",
      prompt: ["a", "b", "c"],
      max_tokens: 2,
    });
    expect(batch.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(batch.choices.every((c) => c.text.trim().split(/\s+/).length === 2)).toBe(true);
    const stream = await client.chat.completions.create({
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 3,
      n: 2,
      seed: 3,
      stream: true,
    });
    const text = new Map<number, string>();
    const finish = new Map<number, string>();
    for await (const c of stream)
      for (const ch of c.choices) {
        text.set(ch.index, (text.get(ch.index) ?? "") + (ch.delta.content ?? ""));
        if (ch.finish_reason) finish.set(ch.index, ch.finish_reason);
      }
    expect([...text.keys()].sort()).toEqual([0, 1]);
    expect(Object.fromEntries(finish)).toEqual({ 0: "length", 1: "length" });
    // The same seed, the same choices, streamed or not (3 of the 4 tokens).
    expect(chat.choices[1]!.message.content!.startsWith(text.get(1)!)).toBe(true);
  });

  it("refuses a streamed batch request with a typed 400 the SDK raises", async () => {
    const err = await client.chat.completions
      .create(
        { model: "llama3.2-3b", messages: [{ role: "user", content: "x" }], stream: true },
        { headers: { "x-sage-tier": "batch" } },
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("stream_not_supported");
  });

  it("an engine's refusal (max_tokens past the context) is the client's 400 and no SLO miss", async () => {
    await expect(
      client.completions.create({ model: "llama3.2-3b", prompt: "x", max_tokens: 500_000 }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await until(
      "RequestDone of the refused request",
      () => doneFor((d) => d.outcome === "rejected") !== undefined,
    );
    // Not an SLO miss: IW-fast attainment stays at 100 % in the dashboard and `status` (it was 81 %
    // after six of these).
    await until("the dashboard counts it", () => dashboard.summary().tiers["iw-fast"].rejected === 1);
    const fast = dashboard.summary().tiers["iw-fast"];
    expect(fast.failed).toBe(0);
    expect(fast.completed).toBeGreaterThan(0);
    expect(fast.attainment).toBe(1);
  });

  /** The engine's in-flight count and generated tokens, as its Prometheus metrics report them. */
  const engine = () => emu.engine.stats();

  it("aborting a stream cancels it at the engine within one heartbeat: running drops, tokens stop", async () => {
    const before = emu.engine.generationTokensTotal;
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      {
        model: "llama3.2-3b",
        messages: [{ role: "user", content: "a long story" }],
        max_tokens: 3000,
        stream: true,
      },
      { signal: controller.signal },
    );
    let n = 0;
    let abortedAt = 0;
    for await (const _ of stream) {
      if (++n === 20) {
        abortedAt = Date.now();
        controller.abort();
        break;
      }
    }
    expect(n).toBe(20);
    await until("the engine stops the request", () => engine().running === 0, HEARTBEAT_MS);
    const stoppedMs = Date.now() - abortedAt;
    expect(stoppedMs).toBeLessThan(HEARTBEAT_MS);
    const generated = emu.engine.generationTokensTotal - before;
    // 3,000 were asked for; generation stopped shortly after the 20 the client read.
    expect(generated).toBeLessThan(200);
    await until(
      "RequestDone cancelled",
      () => doneFor((d) => d.outcome === "cancelled" && d.outputTokens >= 20) !== undefined,
    );
    // Nothing is generated any more: the count holds while the agent reports its load twice.
    const reports = node.stats().published;
    await until("two more load reports", () => node.stats().published >= reports + 2);
    expect(emu.engine.generationTokensTotal - before).toBe(generated);
  });

  it("aborting a request that is not streamed cancels it at the engine too", async () => {
    const controller = new AbortController();
    const pending = client.chat.completions
      .create(
        { model: "llama3.2-3b", messages: [{ role: "user", content: "a long essay" }], max_tokens: 3000 },
        { signal: controller.signal },
      )
      .then(
        () => "answered",
        (e: unknown) => (e instanceof OpenAI.APIUserAbortError ? "aborted" : String(e)),
      );
    await until("the engine runs it", () => engine().running === 1);
    const at = Date.now();
    controller.abort();
    expect(await pending).toBe("aborted");
    await until("the engine stops the request", () => engine().running === 0, HEARTBEAT_MS);
    expect(Date.now() - at).toBeLessThan(HEARTBEAT_MS);
  });

  it("aborting a request the router still holds (no instance of the model yet) drops it there", async () => {
    const controller = new AbortController();
    const pending = client.chat.completions
      .create(
        { model: "llama3.1-8b", messages: [{ role: "user", content: "x" }], max_tokens: 10 },
        { signal: controller.signal },
      )
      .catch((e: unknown) => e);
    await until("the router holds it", () => router.pendingCount === 1);
    controller.abort();
    expect(await pending).toBeInstanceOf(OpenAI.APIUserAbortError);
    await until("the router drops it", () => router.pendingCount === 0, HEARTBEAT_MS);
    await until(
      "RequestDone cancelled by the router",
      () => doneFor((d) => d.model === "llama3.1-8b" && d.outcome === "cancelled") !== undefined,
    );
  });

  it("enforces a key's quota across two gateways: requests and tokens per minute, corrected to what ran, with OpenAI's headers", async () => {
    const a = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "sk-quota", maxRetries: 0 });
    const b = new OpenAI({ baseURL: `${gatewayB.url}/v1`, apiKey: "sk-quota", maxRetries: 0 });
    // A tool call reserves its prompt and 200 output tokens, and uses a few: corrected when it ends.
    const first = await a.chat.completions
      .create({
        model: "llama3.2-3b",
        messages: [{ role: "user", content: "Weather?" }],
        tools,
        tool_choice: "required",
        max_tokens: 200,
      })
      .withResponse();
    expect(first.response.headers.get("x-ratelimit-limit-requests")).toBe("4");
    expect(first.response.headers.get("x-ratelimit-remaining-requests")).toBe("3");
    expect(first.response.headers.get("x-ratelimit-limit-tokens")).toBe("400");
    const used = first.data.usage!.total_tokens;
    expect(used).toBeLessThan(100);
    await until("gateway B counts A's request and its correction", () => {
      const u = gatewayB.quotaUsed("sk-quota");
      return u.requests === 1 && u.tokens === used;
    });
    // 301 more tokens fit only because A's 200-token reservation was corrected to what it used.
    const second = await b.completions.create({ model: "llama3.2-3b", prompt: "x", max_tokens: 300 });
    expect(second.usage!.total_tokens).toBe(301);
    // Two more requests through A: four in the minute.
    for (let i = 0; i < 2; i++)
      await a.completions.create({ model: "llama3.2-3b", prompt: "x", max_tokens: 1 });
    await until("gateway B counts four requests", () => gatewayB.quotaUsed("sk-quota").requests === 4);
    const refused = await b.completions.create({ model: "llama3.2-3b", prompt: "x", max_tokens: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    const e = refused as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.code).toBe("rate_limit_exceeded");
    expect(Number(e.headers?.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(e.headers?.get("x-ratelimit-remaining-requests")).toBe("0");
    // Another key is not affected.
    await expect(
      client.completions.create({ model: "llama3.2-3b", prompt: "x", max_tokens: 1 }),
    ).resolves.toBeDefined();
  });

  it("counts early errors and aborted requests in sage_gateway_requests_total", async () => {
    const bad = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "wrong", maxRetries: 0 });
    await expect(bad.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const value = (status: string) =>
      text
        .split("\n")
        .filter((l) => l.startsWith("sage_gateway_requests_total{") && l.includes(`status="${status}"`))
        .reduce((sum, l) => sum + Number(l.split(" ").at(-1)), 0);
    expect(value("401")).toBeGreaterThanOrEqual(1);
    // The three aborted requests above.
    expect(value("499"), text).toBe(3);
    expect(value("400")).toBeGreaterThanOrEqual(2);
    expect(value("404")).toBeGreaterThanOrEqual(1);
  });
});
