import { describe, expect, it } from "vitest";
import { describeError, ResultCollector } from "./engine-call.js";

describe("engine failures in one line", () => {
  it("names the lost connection instead of undici's 'TypeError: terminated'", () => {
    const terminated = new TypeError("terminated", { cause: new Error("other side closed") });
    expect(describeError(terminated)).toBe("engine connection lost (other side closed)");
    expect(describeError(new TypeError("fetch failed"))).toBe("engine connection lost");
    expect(describeError(new Error("boom"))).toBe("boom");
    expect(describeError("plain")).toBe("plain");
  });
});

describe("a batch request's stored chunks", () => {
  it("joins consecutive plain text chunks of one choice and keeps the rest as sent", () => {
    const r = new ResultCollector();
    r.add({ text: "He", tokens: 1, done: false });
    r.add({ text: "llo", tokens: 1, done: false });
    r.add({ text: "A", tokens: 1, done: false, index: 1 });
    r.add({ text: "!", tokens: 1, done: false, finishReason: "stop" });
    r.add({ text: "", tokens: 0, done: false, toolCalls: [{ index: 0, id: "t" }] });
    r.add({ tokens: 0, done: true, usage: { promptTokens: 3, completionTokens: 4 } });
    expect(r.chunks).toEqual([
      { text: "Hello", tokens: 2, done: false },
      { text: "A", tokens: 1, done: false, index: 1 },
      { text: "!", tokens: 1, done: false, finishReason: "stop" },
      { text: "", tokens: 0, done: false, toolCalls: [{ index: 0, id: "t" }] },
      { tokens: 0, done: true, usage: { promptTokens: 3, completionTokens: 4 } },
    ]);
  });
});
