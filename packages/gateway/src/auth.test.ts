import { describe, expect, it } from "vitest";
import { authenticate, RateLimiter, takeToken } from "./auth.js";

describe("API keys", () => {
  const keys = { k1: { name: "a", tier: "normal" as const }, k2: { name: "b" } };

  it("lets anyone in when no keys are configured", () => {
    expect(authenticate(undefined, undefined)).toEqual({});
    expect(authenticate({}, "Bearer x")).toEqual({});
  });

  it("returns the key and its default tier", () => {
    expect(authenticate(keys, "Bearer k1")).toEqual({ key: "k1", tier: "normal" });
    expect(authenticate(keys, "Bearer k2 ")).toEqual({ key: "k2" });
  });

  it("refuses a missing key, an unknown key and prototype property names with 401", () => {
    expect(authenticate(keys, undefined)).toMatchObject({ status: 401, code: "missing_api_key" });
    expect(authenticate(keys, "Bearer nope")).toMatchObject({ status: 401, code: "invalid_api_key" });
    expect(authenticate(keys, "Bearer constructor")).toMatchObject({ status: 401, code: "invalid_api_key" });
  });
});

describe("token bucket", () => {
  it("spends a full bucket's burst, then refuses with the seconds until a token returns", () => {
    let b = takeToken(undefined, 1, 2, 0);
    expect(b.refused).toBeUndefined();
    b = takeToken(b.bucket, 1, 2, 0);
    expect(b.refused).toBeUndefined();
    b = takeToken(b.bucket, 1, 2, 0);
    expect(b.refused).toMatchObject({ status: 429, code: "rate_limit_exceeded", retryAfterS: 1 });
    // Half a second later half a token has come back: still refused.
    expect(takeToken(b.bucket, 1, 2, 500).refused).toBeDefined();
    expect(takeToken(b.bucket, 1, 2, 1_000).refused).toBeUndefined();
  });

  it("limits only keys with a rate, each on its own bucket", () => {
    const limiter = new RateLimiter({
      slow: { name: "s", requestsPerSecond: 0.5, burst: 1 },
      free: { name: "f" },
    });
    expect(limiter.take("slow", 0)).toBeUndefined();
    expect(limiter.take("slow", 0)?.retryAfterS).toBe(2);
    for (let i = 0; i < 10; i++) expect(limiter.take("free", 0)).toBeUndefined();
    expect(limiter.take(undefined, 0)).toBeUndefined();
    expect(limiter.take("slow", 2_000)).toBeUndefined();
  });
});

describe("bearer scheme", () => {
  it("is case-insensitive", () => {
    const keys = { k1: { name: "a" } };
    expect(authenticate(keys, "bearer k1")).toEqual({ key: "k1" });
    expect(authenticate(keys, "BEARER   k1")).toEqual({ key: "k1" });
    expect(authenticate(keys, "Basic k1")).toMatchObject({ status: 401, code: "missing_api_key" });
  });
});
