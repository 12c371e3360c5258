import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import { NatsBus } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { type Payload, RequestDone } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";

/**
 * The whole request path over a real nats-server: an OpenAI client (fetch + SSE parsing) →
 * gateway → router → node agent → engine emulator, streaming back, with the tier honoured.
 */
describe("gateway → router → node agent → engine emulator", () => {
  let fx: NatsFixture;
  let emu: EmulatorHandle;
  const clock = new WallClock({ seed: 3 });
  const buses: NatsBus[] = [];
  let gateway: GatewayActor;
  let gateway2: GatewayActor;
  let node: NodeAgentActor;
  let router: RouterActor;
  let agent: RegionAgentActor;
  const done: Payload<typeof RequestDone>[] = [];
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };

  beforeAll(async () => {
    fx = await startNats();
    emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", speedup: 20 });
    node = new NodeAgentActor(await ctx("node"), {
      nodeId: "w1",
      region: "westus",
      gpuType: "h100",
      engine: { url: emu.url, kind: "vllm", model: "llama3.2-3b", kvCapacityTokens: 5_000_000 },
      loadReportMs: 200,
    });
    router = new RouterActor(await ctx("router"), { regions: ["westus"], models: ["llama3.2-3b"] });
    const gatewayOptions = {
      region: "westus",
      models: ["llama3.2-3b"],
      apiKeys: {
        "key-normal": { name: "team-a", tier: "normal" as const },
        "key-any": { name: "team-b" },
        "key-limited": { name: "team-c", requestsPerSecond: 1, burst: 2 },
      },
      maxBodyBytes: 64 * 1024,
    };
    gateway = new GatewayActor(await ctx("gateway"), gatewayOptions);
    // Another replica: it answers for batch jobs the first one queued.
    gateway2 = new GatewayActor(await ctx("gateway2"), gatewayOptions);
    // The region agent feeds queued batch work into spare capacity.
    agent = new RegionAgentActor(await ctx("agent"), {
      region: "westus",
      models: ["llama3.2-3b"],
      mode: "unified",
      gpuTypes: ["h100"],
      scalingIntervalMs: 200,
    });
    for (const a of [router, node, agent, gateway, gateway2]) await a.start();
    const watcher = await ctx("watcher");
    watcher.bus.subscribe(RequestDone.subject.pattern({ region: "westus" }), (m) => {
      const d = m.data();
      if (d.ok) done.push(d.value as Payload<typeof RequestDone>);
    });
    for (let i = 0; i < 50 && node.currentState !== "serving"; i++) await clock.sleep(100);
    // Until the router has heard the serving instance's load report (a condition, not a fixed sleep).
    for (let i = 0; i < 100 && router.routableInstances().length === 0; i++) await clock.sleep(50);
    expect(router.routableInstances()).toHaveLength(1);
  }, 30_000);

  afterAll(async () => {
    for (const a of [gateway, gateway2, agent, node, router]) await a?.stop();
    for (const b of buses) await b.close();
    await emu?.close();
    clock.cancelAll();
    await fx?.stop();
  });

  const call = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${gateway.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer key-normal", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  it("streams a chat completion to an OpenAI-style client, with the tier from the header", async () => {
    const r = await call(
      "/v1/chat/completions",
      {
        model: "llama3.2-3b",
        messages: [{ role: "user", content: "Say hello" }],
        max_tokens: 6,
        stream: true,
      },
      { "x-sage-tier": "fast" },
    );
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/event-stream");
    const events = (await r.text())
      .split("\n\n")
      .filter((e) => e.startsWith("data: "))
      .map((e) => e.slice(6));
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1).map(
      (e) =>
        JSON.parse(e) as {
          object: string;
          choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[];
        },
    );
    expect(chunks[0]!.object).toBe("chat.completion.chunk");
    expect(chunks[0]!.choices[0]!.delta.role).toBe("assistant");
    expect(chunks.filter((c) => c.choices[0]!.delta.content)).toHaveLength(6);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("length");
    for (let i = 0; i < 20 && done.length === 0; i++) await clock.sleep(50);
    expect(done.at(-1)).toMatchObject({
      tier: "iw-fast",
      outcome: "ok",
      outputTokens: 6,
      instanceId: "w1-i0",
    });
  });

  it("answers a non-streamed completion, with the API key's default tier", async () => {
    const before = done.length;
    const r = await call("/v1/completions", {
      model: "llama3.2-3b",
      prompt: "Once upon a time",
      max_tokens: 5,
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as {
      object: string;
      choices: { text: string; finish_reason: string }[];
      usage: { completion_tokens: number };
    };
    expect(body.object).toBe("text_completion");
    expect(body.choices[0]!.text.trim().split(/\s+/)).toHaveLength(5);
    expect(body.usage.completion_tokens).toBe(5);
    for (let i = 0; i < 20 && done.length === before; i++) await clock.sleep(50);
    expect(done.at(-1)?.tier).toBe("iw-normal");
  });

  it("queues a batch request (202 + job id); the region agent feeds it to spare capacity and the job completes", async () => {
    const r = await call(
      "/v1/chat/completions",
      { model: "llama3.2-3b", messages: [{ role: "user", content: "summarise" }], max_tokens: 5 },
      { "x-sage-tier": "batch" },
    );
    expect(r.status).toBe(202);
    const job = (await r.json()) as { id: string; object: string; status: string };
    expect(job).toMatchObject({ object: "sage.batch_job", status: "queued" });
    let status: { status: string; output?: string; finish_reason?: string } = { status: "queued" };
    for (let i = 0; i < 100 && status.status !== "completed"; i++) {
      await clock.sleep(100);
      status = (await (
        await fetch(`${gateway.url}/v1/sage/jobs/${job.id}`, {
          headers: { authorization: "Bearer key-normal" },
        })
      ).json()) as typeof status;
    }
    expect(status).toMatchObject({ status: "completed", finish_reason: "length" });
    expect(status.output!.trim().split(/\s+/)).toHaveLength(5);
    // Any gateway answers for the job (it was 404 on every gateway but the one that queued it).
    const elsewhere = await fetch(`${gateway2.url}/v1/sage/jobs/${job.id}`, {
      headers: { authorization: "Bearer key-normal" },
    });
    expect(elsewhere.status).toBe(200);
    expect(await elsewhere.json()).toEqual(status);
    expect(done.some((d) => d.tier === "niw" && d.outcome === "ok")).toBe(true);
    const missing = await fetch(`${gateway.url}/v1/sage/jobs/nope`, {
      headers: { authorization: "Bearer key-normal" },
    });
    expect(missing.status).toBe(404);
  });

  it("rate-limits an API key with 429 and Retry-After", async () => {
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 4; i++) {
      const r = await call(
        "/v1/completions",
        { model: "llama3.2-3b", prompt: "hi", max_tokens: 1 },
        { authorization: "Bearer key-limited" },
      );
      statuses.push(r.status);
      if (r.status === 429) retryAfter = r.headers.get("retry-after");
      await r.text();
    }
    expect(statuses.slice(0, 2)).toEqual([200, 200]);
    expect(statuses.slice(2)).toContain(429);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
  });

  it.each([
    [
      "no API key",
      "/v1/chat/completions",
      { model: "llama3.2-3b", messages: [{ role: "user", content: "x" }] },
      { authorization: "" },
      401,
      "missing_api_key",
    ],
    [
      "a wrong API key",
      "/v1/chat/completions",
      { model: "llama3.2-3b", messages: [{ role: "user", content: "x" }] },
      { authorization: "Bearer nope" },
      401,
      "invalid_api_key",
    ],
    [
      "an invalid tier",
      "/v1/chat/completions",
      { model: "llama3.2-3b", messages: [{ role: "user", content: "x" }] },
      { "x-sage-tier": "urgent" },
      400,
      "invalid_tier",
    ],
    ["malformed JSON", "/v1/completions", "{oops", {}, 400, "invalid_json"],
    ["missing messages", "/v1/chat/completions", { model: "llama3.2-3b" }, {}, 400, "invalid_value"],
    ["an unknown model", "/v1/completions", { model: "gpt-9", prompt: "x" }, {}, 404, "model_not_found"],
    [
      "an oversize prompt",
      "/v1/completions",
      { model: "llama3.2-3b", prompt: "x".repeat(100_000) },
      {},
      413,
      "request_too_large",
    ],
    // Found by test/fuzz-gateway.test.ts (issue 9): each of these was a 5xx, or let the caller in.
    [
      "a key named like a prototype property",
      "/v1/chat/completions",
      { model: "llama3.2-3b", messages: [{ role: "user", content: "x" }] },
      { authorization: "Bearer constructor" },
      401,
      "invalid_api_key",
    ],
    [
      "a tier named like a prototype property",
      "/v1/completions",
      { model: "llama3.2-3b", prompt: "x" },
      { "x-sage-tier": "__proto__" },
      400,
      "invalid_tier",
    ],
    [
      "a null message",
      "/v1/chat/completions",
      { model: "llama3.2-3b", messages: [null] },
      {},
      400,
      "invalid_value",
    ],
    [
      "a prompt of non-strings",
      "/v1/completions",
      { model: "llama3.2-3b", prompt: [{ toString: 1 }] },
      {},
      400,
      "invalid_value",
    ],
    [
      "max_tokens past the engine's context length (was a 502)",
      "/v1/completions",
      { model: "llama3.2-3b", prompt: "x", max_tokens: 1_000_000 },
      {},
      400,
      "invalid_value",
    ],
    [
      "a body nested 10,000 deep (was a 503: stack overflow encoding it for NATS)",
      "/v1/completions",
      `{"model":"llama3.2-3b","prompt":"x","extra":${'{"a":'.repeat(10_000)}1${"}".repeat(10_000)}}`,
      {},
      400,
      "invalid_json",
    ],
    // Issue 17 (low): bodies the gateway cannot read are 415s naming why, not 400 "invalid JSON" or
    // accepted as JSON under another type.
    [
      "JSON sent as text/plain",
      "/v1/completions",
      { model: "llama3.2-3b", prompt: "x", max_tokens: 1 },
      { "content-type": "text/plain" },
      415,
      "unsupported_media_type",
    ],
    [
      "a gzip-compressed body",
      "/v1/completions",
      "\u001f\u008b\u0008",
      { "content-encoding": "gzip" },
      415,
      "unsupported_encoding",
    ],
    [
      "JSON in another charset",
      "/v1/completions",
      { model: "llama3.2-3b", prompt: "x" },
      { "content-type": "application/json; charset=latin1" },
      415,
      "unsupported_media_type",
    ],
  ])(
    "rejects %s with the OpenAI error format, and stays up",
    async (_what, path, body, headers, status, code) => {
      const r = await call(path, body, headers as Record<string, string>);
      expect(r.status).toBe(status);
      const e = (await r.json()) as { error: { code: string; message: string } };
      expect(e.error.code).toBe(code);
      expect((await fetch(`${gateway.url}/health`)).status).toBe(200);
    },
  );

  it("takes a lower-case bearer scheme, refuses invalid UTF-8, answers CORS preflights and /health with a body", async () => {
    const lower = await fetch(`${gateway.url}/v1/models`, { headers: { authorization: "bearer key-any" } });
    expect(lower.status).toBe(200);
    expect(lower.headers.get("access-control-allow-origin")).toBe("*");
    const utf8 = await fetch(`${gateway.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer key-any" },
      body: Buffer.concat([
        Buffer.from('{"model":"llama3.2-3b","prompt":"'),
        Buffer.from([0xc3, 0x28]),
        Buffer.from('"}'),
      ]),
    });
    expect(utf8.status).toBe(400);
    expect(((await utf8.json()) as { error: { message: string } }).error.message).toMatch(/UTF-8/);
    const preflight = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*");
    expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization");
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
    const health = await fetch(`${gateway.url}/health`);
    // Idle connections are kept 65 s (beyond load balancers' 60 s), and the client is told so.
    expect(health.headers.get("keep-alive")).toBe("timeout=65");
    expect(health.headers.get("content-type")).toBe("application/json");
    expect(await health.json()).toEqual({ status: "ok" });
  });

  it("answers malformed job ids, wrong methods and unparsable request targets with typed 4xx (were 500s)", async () => {
    const auth = { authorization: "Bearer key-normal" };
    const bad = await fetch(`${gateway.url}/v1/sage/jobs/%E0%A4%A`, { headers: auth });
    expect(bad.status).toBe(404);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("job_not_found");
    const put = await fetch(`${gateway.url}/v1/models`, { method: "PUT", headers: auth });
    expect(put.status).toBe(405);
    expect(put.headers.get("allow")).toBe("GET");
    const { connect } = await import("node:net");
    const port = Number(new URL(gateway.url).port);
    for (const line of ["GET http://[ HTTP/1.1", "GET /health HTTP/9.9", "GARBAGE"]) {
      const text = await new Promise<string>((resolve) => {
        const s = connect(port, "127.0.0.1");
        let out = "";
        s.on("data", (d) => {
          out += String(d);
        });
        s.on("error", () => {});
        s.on("close", () => resolve(out));
        s.end(`${line}\r\nhost: x\r\nauthorization: Bearer key-normal\r\nconnection: close\r\n\r\n`);
      });
      expect(text, line).toMatch(/^HTTP\/1\.1 400 /);
      expect(text, line).toContain('"type":"invalid_request_error"');
    }
  });

  it("counts requests per model, tier and status in its Prometheus metrics", async () => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    expect(text).toMatch(
      /sage_gateway_requests_total\{model="llama3\.2-3b",tier="fast",status="200"\} [1-9]/,
    );
    expect(text).toMatch(/sage_gateway_requests_total\{model="gpt-9",tier="normal",status="404"\} 1/);
    expect(text).toContain("sage_gateway_ttft_seconds_bucket");
    expect(text).toMatch(/sage_gateway_tbt_seconds_count\{model="llama3\.2-3b",tier="fast"\} [1-9]/);
  });
});
