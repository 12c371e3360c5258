import { describe, expect, it } from "vitest";
import { outputLine, parseBatchInput, windowMs } from "./batch-format.js";

const line = (o: Record<string, unknown>) => JSON.stringify(o);
const chatLine = (id: string, extra: Record<string, unknown> = {}) =>
  line({
    custom_id: id,
    method: "POST",
    url: "/v1/chat/completions",
    body: { model: "m", messages: [{ role: "user", content: "hello there" }], max_tokens: 7, ...extra },
  });

describe("completion_window", () => {
  it("reads <hours>h from 1 to 168 hours, nothing else", () => {
    expect(windowMs("24h")).toBe(86_400_000);
    expect(windowMs("1h")).toBe(3_600_000);
    expect(windowMs("168h")).toBe(168 * 3_600_000);
    for (const w of ["0h", "169h", "24", "1d", "", 24, null, "24h "]) expect(windowMs(w)).toBeUndefined();
  });
});

describe("parseBatchInput", () => {
  it("reads every request, skipping blank lines, with its model, prompt estimate and max tokens", () => {
    const r = parseBatchInput(
      `${chatLine("a")}\n\n${chatLine("b", { max_completion_tokens: 3 })}\n`,
      "/v1/chat/completions",
      ["m"],
      256,
    );
    expect(r).toEqual({
      lines: [
        {
          customId: "a",
          body: expect.objectContaining({ model: "m" }),
          model: "m",
          promptTokens: 3,
          maxTokens: 7,
        },
        {
          customId: "b",
          body: expect.objectContaining({ model: "m" }),
          model: "m",
          promptTokens: 3,
          maxTokens: 3,
        },
      ],
    });
  });

  it("names every bad line: JSON, custom_id (missing, duplicate), method, url, body, stream, unknown model", () => {
    const text = [
      "{not json",
      line({ method: "POST", url: "/v1/chat/completions", body: {} }),
      chatLine("dup"),
      chatLine("dup"),
      line({ custom_id: "g", method: "GET", url: "/v1/chat/completions", body: {} }),
      line({ custom_id: "u", method: "POST", url: "/v1/completions", body: {} }),
      line({
        custom_id: "b",
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "m", messages: [] },
      }),
      chatLine("s", { stream: true }),
      line({
        custom_id: "x",
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: "other", messages: [{ role: "user", content: "x" }] },
      }),
    ].join("\n");
    const r = parseBatchInput(text, "/v1/chat/completions", ["m"], 256);
    expect("errors" in r && r.errors.map((e) => [e.line, e.code])).toEqual([
      [1, "invalid_json_line"],
      [2, "missing_required_parameter"],
      [4, "duplicate_custom_id"],
      [5, "invalid_method"],
      [6, "mismatched_url"],
      [7, "invalid_body"],
      [8, "invalid_body"],
      [9, "model_not_found"],
    ]);
  });

  it("refuses an empty file", () => {
    expect(parseBatchInput("\n\n", "/v1/completions", ["m"], 256)).toEqual({
      errors: [expect.objectContaining({ code: "empty_file" })],
    });
  });
});

describe("outputLine", () => {
  const meta = { customId: "c1", model: "m", promptTokens: 5 };
  it("makes the non-streamed chat.completion from the stored chunks, with the engine's usage", () => {
    const o = outputLine(
      "batch_abc",
      3,
      meta,
      true,
      {
        requestId: "rb-abc-3",
        outcome: "ok",
        atMs: 1_700_000_000_000,
        chunks: [
          { text: "Hel", tokens: 1, done: false },
          { text: "lo", tokens: 1, done: false, finishReason: "stop" },
          { tokens: 0, done: true, usage: { promptTokens: 9, completionTokens: 2 } },
        ],
      },
      1_700_000_000,
    );
    expect(o.ok).toBe(true);
    expect(o.line).toMatchObject({
      id: "batch_req_abc_3",
      custom_id: "c1",
      error: null,
      response: {
        status_code: 200,
        request_id: "rb-abc-3",
        body: {
          object: "chat.completion",
          model: "m",
          choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "stop" }],
          usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 },
        },
      },
    });
  });

  it("puts an engine refusal (400) and a failure (500) in the error file's format", () => {
    const refused = outputLine(
      "batch_abc",
      0,
      meta,
      false,
      {
        requestId: "r",
        outcome: "rejected",
        atMs: 0,
        chunks: [{ tokens: 0, done: true, error: { code: "context_length_exceeded", message: "too long" } }],
      },
      0,
    );
    expect(refused).toEqual({
      ok: false,
      line: expect.objectContaining({
        response: {
          status_code: 400,
          request_id: "r",
          body: { error: expect.objectContaining({ message: "too long", code: "context_length_exceeded" }) },
        },
      }),
    });
    const failed = outputLine(
      "batch_abc",
      0,
      meta,
      false,
      { requestId: "r", outcome: "failed", atMs: 0, chunks: [] },
      0,
    );
    expect(failed.ok).toBe(false);
    expect(failed.line.response?.status_code).toBe(500);
  });
});
