import { TIERS, type Tier } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import { ENGINE_KINDS, type EngineKind } from "./metrics.js";
import { compilePriority, ENGINE_PRIORITY, engineCall } from "./priority.js";

const routed = (tier: Tier, body?: Record<string, unknown>) => ({
  tier,
  inputTokens: 10,
  maxOutputTokens: 4,
  ...(body ? { body } : {}),
});

/** The body the agent sends for one tier, with the kind's priority turned on (or off). */
const sent = (kind: EngineKind, tier: Tier, on = true, body?: Record<string, unknown>) =>
  engineCall(routed(tier, body), "m", compilePriority(kind, on)).body;

describe("engine request building per engine kind", () => {
  it("vLLM with priority scheduling: IW-fast 0, IW-normal 1, NIW 2 (lower is scheduled first)", () => {
    expect(TIERS.map((t) => sent("vllm", t).priority)).toEqual([0, 1, 2]);
  });

  it("SGLang: IW-fast 20, IW-normal 10, NIW 0 (higher is scheduled first; only IW-fast outranks NIW by more than the preemption threshold 10)", () => {
    expect(TIERS.map((t) => sent("sglang", t).priority)).toEqual([20, 10, 0]);
  });

  it.each(["tgi", "llamacpp"] as const)("%s gets no priority field (it has none)", (kind) => {
    for (const t of TIERS) expect(sent(kind, t, false)).not.toHaveProperty("priority");
  });

  it("sends no priority when it is off, whatever the engine", () => {
    for (const kind of ENGINE_KINDS) expect(sent(kind, "iw-fast", false)).not.toHaveProperty("priority");
  });

  it("keeps the client's body, forces the model and streaming, and lets the tier override a client priority", () => {
    const call = engineCall(
      routed("niw", {
        model: "alias",
        messages: [{ role: "user", content: "hi" }],
        priority: -5,
        top_p: 0.5,
      }),
      "llama3.2-3b",
      compilePriority("vllm", true),
    );
    expect(call).toEqual({
      path: "/v1/chat/completions",
      body: {
        model: "llama3.2-3b",
        messages: [{ role: "user", content: "hi" }],
        priority: 2,
        top_p: 0.5,
        stream: true,
      },
    });
  });

  it("builds a completion of the routed size when the request has no body (simulated traffic)", () => {
    const call = engineCall(routed("iw-normal"), "m", compilePriority("vllm", true));
    expect(call.path).toBe("/v1/completions");
    expect(call.body).toMatchObject({ model: "m", max_tokens: 4, stream: true, priority: 1 });
  });

  it("uses a configured field and values in place of the kind's", () => {
    const p = compilePriority("sglang", {
      values: { "iw-fast": 0, "iw-normal": 5, niw: 9 },
      order: "lower-first",
    });
    expect(engineCall(routed("iw-normal"), "m", p).body.priority).toBe(5);
    const q = compilePriority("vllm", { field: "sched_priority" });
    expect(engineCall(routed("niw"), "m", q).body).toMatchObject({ sched_priority: 2 });
  });

  it("refuses priority for engines without it, and inverted or clobbering mappings, as CONFIG errors", () => {
    expect(() => compilePriority("tgi", true)).toThrowError(
      /engine.priority: engine kind tgi has no request priority/,
    );
    expect(() => compilePriority("llamacpp", { field: "priority" })).toThrowError(
      /llamacpp has no request priority/,
    );
    // vLLM's numbers handed to SGLang unchanged would put batch ahead of interactive work.
    expect(() => compilePriority("sglang", { values: ENGINE_PRIORITY.vllm!.values })).toThrowError(
      /sglang schedules higher values first/,
    );
    expect(() => compilePriority("vllm", { field: "model" })).toThrowError(
      /field model is part of the request/,
    );
    try {
      compilePriority("tgi", true);
    } catch (e) {
      expect((e as { code: string }).code).toBe("CONFIG");
    }
  });

  it("has a row for every engine kind", () => {
    expect(Object.keys(ENGINE_PRIORITY).sort()).toEqual([...ENGINE_KINDS].sort());
  });
});

describe("asking the engine for usage", () => {
  const r = { tier: "iw-fast" as const, inputTokens: 1, maxOutputTokens: 1 };
  it("adds include_usage, keeping what the client asked for in stream_options", () => {
    const call = engineCall(
      { ...r, body: { model: "x", prompt: "p", stream_options: { continuous_usage_stats: true } } },
      "m",
      undefined,
      true,
    );
    expect(call.body.stream_options).toEqual({ continuous_usage_stats: true, include_usage: true });
    expect(
      engineCall({ ...r, body: { model: "x", prompt: "p" } }, "m", undefined).body.stream_options,
    ).toBeUndefined();
  });
});
