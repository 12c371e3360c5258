import { describe, expect, it } from "vitest";
import { describeError } from "./engine-call.js";

describe("engine failures in one line", () => {
  it("names the lost connection instead of undici's 'TypeError: terminated'", () => {
    const terminated = new TypeError("terminated", { cause: new Error("other side closed") });
    expect(describeError(terminated)).toBe("engine connection lost (other side closed)");
    expect(describeError(new TypeError("fetch failed"))).toBe("engine connection lost");
    expect(describeError(new Error("boom"))).toBe("boom");
    expect(describeError("plain")).toBe("plain");
  });
});
