import { describe, expect, it } from "vitest";
import { admit, QuotaWindow, quotaKeyId, rateLimitHeaders, SharedQuotas, type UsageEvent } from "./quota.js";

describe("quota window", () => {
  it("sums the last minute, late events in their own second, and forgets older ones", () => {
    const w = new QuotaWindow();
    w.add(1_000, 1, 100);
    w.add(30_000, 1, 50);
    w.add(1_500, 0, -60); // a correction of the first request, counted when it was admitted
    expect(w.used(30_000)).toEqual({ requests: 2, tokens: 90, oldestMs: 1_000 });
    expect(w.used(61_500)).toEqual({ requests: 1, tokens: 50, oldestMs: 30_000 });
  });
});

describe("admission", () => {
  const used = { requests: 2, tokens: 900, oldestMs: 10_000 };
  it("admits under both limits, refuses one request or its tokens over, with the wait until room frees", () => {
    expect(admit({ requestsPerMinute: 3, tokensPerMinute: 1_000 }, used, 100, 20_000)).toBeUndefined();
    expect(admit({ requestsPerMinute: 2 }, used, 1, 20_000)).toMatchObject({
      status: 429,
      type: "requests",
      code: "rate_limit_exceeded",
      retryAfterS: 50,
    });
    expect(admit({ tokensPerMinute: 1_000 }, used, 101, 20_000)).toMatchObject({
      type: "tokens",
      retryAfterS: 50,
    });
    // More than the whole minute allows: no wait helps (no Retry-After).
    expect(admit({ tokensPerMinute: 1_000 }, used, 5_000, 20_000)?.retryAfterS).toBeUndefined();
  });

  it("answers OpenAI's x-ratelimit headers", () => {
    expect(rateLimitHeaders({ requestsPerMinute: 3, tokensPerMinute: 1_000 }, used, 20_000)).toEqual({
      "x-ratelimit-limit-requests": "3",
      "x-ratelimit-remaining-requests": "1",
      "x-ratelimit-reset-requests": "50.000s",
      "x-ratelimit-limit-tokens": "1000",
      "x-ratelimit-remaining-tokens": "100",
      "x-ratelimit-reset-tokens": "50.000s",
    });
  });
});

describe("quotas shared by gateways", () => {
  it("counts the other gateway's admissions and corrections, never its own twice, and no secret on the wire", () => {
    const wire: UsageEvent[] = [];
    const limits = () => ({ requestsPerMinute: 2, tokensPerMinute: 300 });
    const a = new SharedQuotas(limits, "gw-a", (u) => wire.push(u));
    const b = new SharedQuotas(limits, "gw-b", (u) => wire.push(u));
    const first = a.take("sk-secret", 200, 0)!;
    expect(first.refused).toBeUndefined();
    for (const u of wire) {
      a.record(u); // its own echo: ignored
      b.record(u);
    }
    expect(wire[0]).toEqual({
      key: quotaKeyId("sk-secret"),
      gateway: "gw-a",
      requests: 1,
      tokens: 200,
      atMs: 0,
    });
    expect(JSON.stringify(wire)).not.toContain("sk-secret");
    // B sees A's reservation: 200 + 200 > 300.
    expect(b.take("sk-secret", 200, 1_000)?.refused).toMatchObject({ type: "tokens" });
    // A's request used 40 tokens: the correction frees the rest for B.
    first.settle(40);
    b.record(wire.at(-1)!);
    expect(wire.at(-1)).toMatchObject({ requests: 0, tokens: -160, atMs: 0 });
    expect(b.take("sk-secret", 200, 2_000)?.refused).toBeUndefined();
    // Two requests in the minute: a third is refused wherever it arrives.
    for (const u of wire.slice(-1)) a.record(u);
    expect(a.take("sk-secret", 1, 3_000)?.refused).toMatchObject({ type: "requests" });
    expect(a.take("sk-other-key", 1, 3_000)).toBeDefined();
    expect(
      new SharedQuotas(
        () => undefined,
        "gw",
        () => {},
      ).take("sk", 1, 0),
    ).toBeUndefined();
  });
});
