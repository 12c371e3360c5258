import { describe, expect, it } from "vitest";
import { checkBody, depthExceeds } from "./validate.js";

describe("request validation", () => {
  it("accepts a minimal chat and completions body", () => {
    expect(checkBody({ model: "m", messages: [{ role: "user", content: "hi" }] }, true)).toBeUndefined();
    expect(checkBody({ model: "m", prompt: ["a", "b"] }, false)).toBeUndefined();
  });

  it("names the offending parameter", () => {
    expect(checkBody({ model: "m", messages: [null] }, true)).toMatchObject({
      status: 400,
      param: "messages.0",
    });
    expect(checkBody({ model: "m", prompt: "x", max_tokens: 0 }, false)).toMatchObject({
      param: "max_tokens",
    });
    expect(checkBody({ model: "m", prompt: "x", temperature: 3 }, false)).toMatchObject({
      param: "temperature",
    });
    expect(checkBody({ prompt: "x" }, false)).toMatchObject({ param: "model" });
  });

  it("measures nesting without recursion", () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(depthExceeds(deep, 64)).toBe(true);
    expect(depthExceeds({ a: [{ b: 1 }] }, 3)).toBe(false);
    expect(depthExceeds({ a: [{ b: {} }] }, 3)).toBe(true);
  });
});
