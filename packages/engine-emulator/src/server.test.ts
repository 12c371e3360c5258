import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmulatorHandle, startEmulator } from "./server.js";

/** Parse an SSE body into its JSON data payloads (and the final [DONE]). */
async function sse(res: Response): Promise<(Record<string, unknown> | "[DONE]")[]> {
  const text = await res.text();
  return text
    .split("\n\n")
    .filter((b) => b.startsWith("data: "))
    .map((b) => b.slice(6))
    .map((d) => (d === "[DONE]" ? "[DONE]" : (JSON.parse(d) as Record<string, unknown>)));
}

const post = (url: string, body: unknown) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

describe("engine emulator (vLLM-compatible HTTP server)", () => {
  let emu: EmulatorHandle;
  beforeAll(async () => {
    // 20× faster than measured so the test is quick; timing comes from the llama3.2-3b profile.
    emu = await startEmulator({
      model: "llama3.2-3b",
      gpu: "h100",
      speedup: 20,
      loadMs: 50,
      maxModelLen: 4096,
    });
  });
  afterAll(async () => {
    await emu?.close();
  });

  it("reports 503 while the model loads, then 200; lists the model", async () => {
    const slow = await startEmulator({ model: "llama3.2-3b", gpu: "h100", loadMs: 300 });
    expect((await fetch(`${slow.url}/health`)).status).toBe(503);
    const early = await post(`${slow.url}/v1/completions`, { model: "llama3.2-3b", prompt: "hi" });
    expect(early.status).toBe(503);
    expect(early.headers.get("retry-after")).toBe("1");
    await slow.ready;
    expect((await fetch(`${slow.url}/health`)).status).toBe(200);
    await slow.close();
    await emu.ready;
    const models = (await (await fetch(`${emu.url}/v1/models`)).json()) as {
      data: { id: string; max_model_len: number }[];
    };
    expect(models.data).toEqual([expect.objectContaining({ id: "llama3.2-3b", max_model_len: 4096 })]);
  });

  it("advertises a context no longer than its KV cache holds, as vLLM must", async () => {
    const small = await startEmulator({ model: "llama3.2-3b", gpu: "h100", kvCapacityTokens: 8_000 });
    try {
      const models = (await (await fetch(`${small.url}/v1/models`)).json()) as {
        data: { max_model_len: number }[];
      };
      expect(models.data[0]!.max_model_len).toBe(8_000);
    } finally {
      await small.close();
    }
  });

  it("answers a non-streamed completion with exactly max_tokens tokens and usage", async () => {
    await emu.ready;
    const r = await post(`${emu.url}/v1/completions`, {
      model: "llama3.2-3b",
      prompt: "x".repeat(400),
      max_tokens: 12,
    });
    expect(r.status).toBe(200);
    const body = (await r.json()) as {
      object: string;
      choices: { text: string; finish_reason: string }[];
      usage: Record<string, number>;
    };
    expect(body.object).toBe("text_completion");
    expect(body.choices[0]!.finish_reason).toBe("length");
    expect(body.choices[0]!.text.trim().split(/\s+/)).toHaveLength(12);
    expect(body.usage).toEqual({ prompt_tokens: 100, completion_tokens: 12, total_tokens: 112 });
  });

  it("streams a chat completion as SSE chunks: role first, one token each, finish_reason, usage, [DONE]", async () => {
    await emu.ready;
    const r = await post(`${emu.url}/v1/chat/completions`, {
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "Tell me a story" }],
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(r.headers.get("content-type")).toBe("text/event-stream");
    const events = await sse(r);
    expect(events.at(-1)).toBe("[DONE]");
    const chunks = events.slice(0, -1) as {
      object: string;
      choices: { delta: { role?: string; content?: string }; finish_reason: string | null }[];
      usage?: { completion_tokens: number };
    }[];
    const tokens = chunks.filter((c) => c.choices.length);
    expect(tokens).toHaveLength(5);
    expect(tokens[0]!.object).toBe("chat.completion.chunk");
    expect(tokens[0]!.choices[0]!.delta.role).toBe("assistant");
    expect(tokens.at(-1)!.choices[0]!.finish_reason).toBe("length");
    expect(tokens.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
    expect(chunks.at(-1)!.usage?.completion_tokens).toBe(5);
  });

  it("batches concurrent requests and exposes vLLM's metric names", async () => {
    await emu.ready;
    const before = await (await fetch(`${emu.url}/metrics`)).text();
    const gen = (s: string) =>
      Number(/vllm:generation_tokens_total\{model_name="llama3.2-3b"\} (\d+)/.exec(s)?.[1] ?? Number.NaN);
    const many = Array.from({ length: 8 }, () =>
      // Long enough to overlap at 20× speed (a 3B decode step is ~0.4 ms there).
      post(`${emu.url}/v1/completions`, { model: "llama3.2-3b", prompt: "hello", max_tokens: 1_000 }),
    );
    // Look until the engine runs several of them at once (requests reach it over HTTP at their own pace).
    let during = "";
    let running = 0;
    for (let i = 0; i < 200 && running <= 1; i++) {
      await new Promise((r) => setTimeout(r, 10));
      during = await (await fetch(`${emu.url}/metrics`)).text();
      running = Number(/vllm:num_requests_running\{model_name="llama3.2-3b"\} (\d+)/.exec(during)?.[1]);
    }
    expect(running).toBeGreaterThan(1);
    expect(during).toMatch(/vllm:kv_cache_usage_perc\{model_name="llama3.2-3b"\} 0\.\d+/);
    await Promise.all((await Promise.all(many)).map((r) => r.json()));
    const after = await (await fetch(`${emu.url}/metrics`)).text();
    expect(gen(after) - gen(before)).toBe(8 * 1_000);
    for (const m of [
      "vllm:num_requests_waiting",
      "vllm:time_to_first_token_seconds_bucket",
      "vllm:inter_token_latency_seconds_count",
      "vllm:e2e_request_latency_seconds_sum",
      "vllm:prompt_tokens_total",
    ]) {
      expect(after).toContain(m);
    }
  });

  it("frees the KV cache of a client that disconnects mid-stream", async () => {
    await emu.ready;
    const ac = new AbortController();
    const r = await fetch(`${emu.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "llama3.2-3b", prompt: "hello", max_tokens: 2000, stream: true }),
      signal: ac.signal,
    });
    const reader = r.body!.getReader();
    await reader.read();
    ac.abort();
    for (let i = 0; i < 50 && emu.engine.stats().running > 0; i++)
      await new Promise((x) => setTimeout(x, 10));
    expect(emu.engine.stats()).toMatchObject({ running: 0, waiting: 0, kvUsage: 0 });
  });

  it.each([
    ["malformed JSON", "{not json", 400, "invalid_json"],
    ["a missing prompt", { model: "llama3.2-3b" }, 400, "invalid_value"],
    ["an unknown model", { model: "gpt-9", prompt: "hi" }, 404, "model_not_found"],
    [
      "a prompt beyond the context length",
      { model: "llama3.2-3b", prompt: "x".repeat(20_000) },
      400,
      "context_length_exceeded",
    ],
  ])("rejects %s with the OpenAI error shape", async (_what, body, status, code) => {
    await emu.ready;
    const r = await post(`${emu.url}/v1/completions`, body);
    expect(r.status).toBe(status);
    const e = (await r.json()) as { error: { code: string; message: string; type: string } };
    expect(e.error.code).toBe(code);
    expect(e.error.message.length).toBeGreaterThan(5);
    expect((await fetch(`${emu.url}/health`)).status).toBe(200); // still up
  });
});

describe("engine emulator body limit", () => {
  it("answers 413 for a body over the limit instead of dropping the connection", async () => {
    const emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", maxBodyBytes: 1024 });
    const r = await post(`${emu.url}/v1/completions`, { model: "llama3.2-3b", prompt: "x".repeat(50_000) });
    expect(r.status).toBe(413);
    expect(((await r.json()) as { error: { code: string } }).error.code).toBe("request_too_large");
    await emu.close();
  });
});

describe("engine emulator scheduling priority (vLLM's --scheduling-policy)", () => {
  /** The tiers of the requests the real engine was handed, seen by wrapping its submit (the engine still runs them). */
  const watchTiers = (emu: EmulatorHandle): (string | undefined)[] => {
    const seen: (string | undefined)[] = [];
    const submit = emu.engine.submit.bind(emu.engine);
    emu.engine.submit = (r) => {
      seen.push(r.tier);
      return submit(r);
    };
    return seen;
  };
  const byTier = async (emu: EmulatorHandle) => {
    const text = await (await fetch(`${emu.url}/metrics`)).text();
    const count = (tier: string) =>
      Number(
        new RegExp(
          `emulator:requests_by_tier_total\\{model_name="llama3.2-3b",tier="${tier}"\\} (\\d+)`,
        ).exec(text)?.[1] ?? 0,
      );
    return { "iw-fast": count("iw-fast"), "iw-normal": count("iw-normal"), niw: count("niw") };
  };
  const ask = (emu: EmulatorHandle, extra: Record<string, unknown>) =>
    post(`${emu.url}/v1/chat/completions`, {
      model: "llama3.2-3b",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
      ...extra,
    });

  it("with --scheduling-policy priority, hands a request with priority 0 to the engine as IW-fast, 1 as IW-normal, 2 as NIW; none is vLLM's default 0", async () => {
    const emu = await startEmulator({
      model: "llama3.2-3b",
      gpu: "h100",
      speedup: 20,
      schedulingPolicy: "priority",
    });
    const seen = watchTiers(emu);
    for (const priority of [0, 1, 2, 7, -3]) expect((await ask(emu, { priority })).status).toBe(200);
    expect((await ask(emu, {})).status).toBe(200);
    expect(seen).toEqual(["iw-fast", "iw-normal", "niw", "niw", "iw-fast", "iw-fast"]);
    expect(await byTier(emu)).toEqual({ "iw-fast": 3, "iw-normal": 1, niw: 2 });
    await emu.close();
  });

  it("with the default fcfs policy, accepts a priority and schedules every request alike (as vLLM's v1 engine)", async () => {
    const emu = await startEmulator({ model: "llama3.2-3b", gpu: "h100", speedup: 20 });
    const seen = watchTiers(emu);
    for (const priority of [0, 2]) expect((await ask(emu, { priority })).status).toBe(200);
    expect(seen).toEqual(["iw-fast", "iw-fast"]);
    await emu.close();
  });

  it.each([
    ["a fraction", 0.5],
    ["a string", "0"],
    ["null", null],
  ])("rejects a priority that is %s with an OpenAI-shaped 400 naming the field", async (_what, priority) => {
    const emu = await startEmulator({
      model: "llama3.2-3b",
      gpu: "h100",
      speedup: 20,
      schedulingPolicy: "priority",
    });
    const seen = watchTiers(emu);
    const r = await ask(emu, { priority });
    expect(r.status).toBe(400);
    const e = (await r.json()) as { error: { code: string; message: string; type: string; param: string } };
    expect(e.error).toMatchObject({
      code: "invalid_value",
      type: "invalid_request_error",
      param: "priority",
    });
    expect(e.error.message).toMatch(/^priority: /);
    expect(seen).toEqual([]);
    await emu.close();
  });
});
