import { describe, expect, it } from "vitest";
import { tokenText } from "./openai.js";
import { planOutput } from "./output.js";

describe("what the emulator answers", () => {
  it("is max_tokens of filler text, the same for the same seed", () => {
    const a = planOutput({ chat: false, maxTokens: 5, seed: 42 });
    expect(a.tokens).toBe(5);
    expect(a.finish).toBe("length");
    expect(a.whole().text).toBe(planOutput({ chat: true, maxTokens: 5, seed: 42 }).whole().text);
    expect(a.whole().text).not.toBe(planOutput({ chat: false, maxTokens: 5, seed: 43 }).whole().text);
  });

  it("takes any safe integer seed, negative and huge ones too", () => {
    for (const seed of [-5, -1, 0, 2 ** 53 - 1, -(2 ** 53) + 1]) {
      const o = planOutput({ chat: false, maxTokens: 4, seed, stop: ["zz"], logprobs: { top: 1 } });
      expect(o.whole().text.trim().split(" "), String(seed)).toHaveLength(4);
    }
  });

  it("ends before the first stop string, with finish_reason stop", () => {
    const full = Array.from({ length: 40 }, (_, i) => tokenText(7, i)).join("");
    const stop = tokenText(7, 3) + tokenText(7, 4);
    const o = planOutput({ chat: false, maxTokens: 40, seed: 7, stop: [stop] });
    expect(o.finish).toBe("stop");
    expect(o.whole().text).toBe(full.slice(0, full.indexOf(stop)));
    expect(o.tokens).toBeLessThanOrEqual(5);
  });

  it("calls the chosen tool with its arguments streamed in pieces, finish_reason tool_calls", () => {
    const o = planOutput({
      chat: true,
      maxTokens: 100,
      seed: 9,
      tool: { name: "lookup", argument: "query" },
    });
    expect(o.finish).toBe("tool_calls");
    const first = o.token(0).toolCalls![0] as { id: string; function: { name: string; arguments: string } };
    expect(first.function).toEqual({ name: "lookup", arguments: "" });
    let args = "";
    for (let i = 1; i < o.tokens; i++)
      args += (o.token(i).toolCalls![0] as { function: { arguments: string } }).function.arguments;
    expect(JSON.parse(args)).toEqual({ query: expect.any(String) });
    expect(o.whole().toolCalls).toEqual([
      { id: first.id, type: "function", function: { name: "lookup", arguments: args } },
    ]);
  });

  it("cuts a tool call short at max_tokens (finish_reason length)", () => {
    const o = planOutput({ chat: true, maxTokens: 2, seed: 9, tool: { name: "f", argument: "x" } });
    expect(o).toMatchObject({ tokens: 2, finish: "length" });
  });

  it("answers a JSON response_format with one JSON object, cut short (invalid) at max_tokens", () => {
    const o = planOutput({ chat: true, maxTokens: 100, seed: 4, json: { key: "city" } });
    expect(o.finish).toBe("stop");
    expect(JSON.parse(o.whole().text)).toEqual({ city: expect.any(String) });
    const short = planOutput({ chat: true, maxTokens: 2, seed: 4, json: { key: "city" } });
    expect(short).toMatchObject({ tokens: 2, finish: "length" });
    expect(() => JSON.parse(short.whole().text)).toThrow();
  });

  it("reports log probabilities in the chat and the completions shape", () => {
    const chat = planOutput({ chat: true, maxTokens: 2, seed: 1, logprobs: { top: 2 } }).token(0).logprobs!;
    expect(chat.content).toEqual([
      expect.objectContaining({
        token: tokenText(1, 0),
        top_logprobs: [expect.any(Object), expect.any(Object)],
      }),
    ]);
    const c = planOutput({ chat: false, maxTokens: 3, seed: 1, logprobs: { top: 1 } }).whole().logprobs!;
    expect(c.tokens).toHaveLength(3);
    expect(c.token_logprobs).toHaveLength(3);
    expect(c.text_offset).toEqual([
      0,
      tokenText(1, 0).length,
      tokenText(1, 0).length + tokenText(1, 1).length,
    ]);
  });
});
