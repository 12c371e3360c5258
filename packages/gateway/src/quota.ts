import { createHash } from "node:crypto";
import type { HttpError } from "./http.js";

/**
 * Per-key quotas shared by every gateway replica: requests per minute and tokens per minute (a request
 * reserves its prompt estimate plus its maximum output, corrected to what it used when it ends). Each
 * gateway counts what it admits and publishes it (`QuotaUsage` on NATS); every gateway adds what the
 * others publish, so all enforce one limit over the same sliding minute. Pure: a window of usage
 * events and the admission rule; the gateway carries the events.
 */

export const QUOTA_WINDOW_MS = 60_000;

export interface QuotaLimits {
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
}

/** The key as it travels on NATS: a hash, never the secret. */
export function quotaKeyId(apiKey: string): string {
  return createHash("sha256").update(apiKey).digest("hex").slice(0, 24);
}

/** Usage of one key over the last minute, in one-second buckets (any number of gateways' events). */
export class QuotaWindow {
  private readonly buckets: { second: number; requests: number; tokens: number }[] = [];

  add(atMs: number, requests: number, tokens: number): void {
    const second = Math.floor(atMs / 1000);
    // Events arrive nearly in order; a late one goes to its own second's bucket.
    let i = this.buckets.length - 1;
    while (i >= 0 && this.buckets[i]!.second > second) i--;
    let b = i >= 0 ? this.buckets[i] : undefined;
    if (!b || b.second !== second) {
      b = { second, requests: 0, tokens: 0 };
      this.buckets.splice(i + 1, 0, b);
    }
    b.requests += requests;
    b.tokens += tokens;
  }

  /** Requests and tokens used in the minute before `nowMs`, and when the oldest of them leaves it. */
  used(nowMs: number): { requests: number; tokens: number; oldestMs: number | undefined } {
    const from = Math.floor((nowMs - QUOTA_WINDOW_MS) / 1000);
    while (this.buckets.length && this.buckets[0]!.second <= from) this.buckets.shift();
    let requests = 0;
    let tokens = 0;
    for (const b of this.buckets) {
      requests += b.requests;
      tokens += b.tokens;
    }
    const first = this.buckets[0];
    return { requests, tokens: Math.max(0, tokens), oldestMs: first ? first.second * 1000 : undefined };
  }
}

/** OpenAI's rate-limit headers for one answer. */
export function rateLimitHeaders(
  limits: QuotaLimits,
  used: { requests: number; tokens: number; oldestMs: number | undefined },
  nowMs: number,
): Record<string, string> {
  const resetS =
    used.oldestMs === undefined ? 0 : Math.max(0, used.oldestMs + QUOTA_WINDOW_MS - nowMs) / 1000;
  const h: Record<string, string> = {};
  if (limits.requestsPerMinute !== undefined) {
    h["x-ratelimit-limit-requests"] = String(limits.requestsPerMinute);
    h["x-ratelimit-remaining-requests"] = String(Math.max(0, limits.requestsPerMinute - used.requests));
    h["x-ratelimit-reset-requests"] = `${resetS.toFixed(3)}s`;
  }
  if (limits.tokensPerMinute !== undefined) {
    h["x-ratelimit-limit-tokens"] = String(limits.tokensPerMinute);
    h["x-ratelimit-remaining-tokens"] = String(Math.max(0, limits.tokensPerMinute - used.tokens));
    h["x-ratelimit-reset-tokens"] = `${resetS.toFixed(3)}s`;
  }
  return h;
}

/**
 * May a request reserving `tokens` be admitted now? The 429 (with Retry-After: until the oldest usage
 * leaves the window) when one more request, or its tokens, would pass a limit.
 */
export function admit(
  limits: QuotaLimits,
  used: { requests: number; tokens: number; oldestMs: number | undefined },
  tokens: number,
  nowMs: number,
): HttpError | undefined {
  const overRequests = limits.requestsPerMinute !== undefined && used.requests + 1 > limits.requestsPerMinute;
  const overTokens = limits.tokensPerMinute !== undefined && used.tokens + tokens > limits.tokensPerMinute;
  if (!overRequests && !overTokens) return undefined;
  if (overTokens && limits.tokensPerMinute !== undefined && tokens > limits.tokensPerMinute)
    return {
      status: 429,
      message: `this request reserves ${tokens} tokens, more than the key's ${limits.tokensPerMinute} tokens/min`,
      type: "tokens",
      code: "rate_limit_exceeded",
    };
  const waitMs = used.oldestMs === undefined ? 1_000 : used.oldestMs + QUOTA_WINDOW_MS - nowMs;
  return {
    status: 429,
    message: overRequests
      ? `rate limit of ${limits.requestsPerMinute} requests/min for this key reached`
      : `rate limit of ${limits.tokensPerMinute} tokens/min for this key reached`,
    type: overRequests ? "requests" : "tokens",
    code: "rate_limit_exceeded",
    retryAfterS: Math.max(1, Math.ceil(waitMs / 1000)),
  };
}

/** One usage event, as `QuotaUsage` carries it. */
export interface UsageEvent {
  key: string;
  gateway: string;
  requests: number;
  tokens: number;
  atMs: number;
}

/** An admitted request's quota: the headers to answer with, and the call that settles its tokens. */
export interface Admission {
  headers: Record<string, string>;
  refused?: HttpError;
  /** The request ended having used `tokens` (prompt + output): the reservation is corrected. */
  settle(tokens: number): void;
}

/**
 * The quotas of every key with a per-minute limit, as this gateway sees them: its own admissions and
 * every other gateway's (`record`). `publish` carries this gateway's events to the others.
 */
export class SharedQuotas {
  private readonly windows = new Map<string, QuotaWindow>();

  constructor(
    private readonly limitsOf: (apiKey: string) => QuotaLimits | undefined,
    private readonly instance: string,
    private readonly publish: (u: UsageEvent) => void,
  ) {}

  /** Another gateway's event (this gateway's own come back too, and are already counted). */
  record(u: UsageEvent): void {
    if (u.gateway !== this.instance) this.window(u.key).add(u.atMs, u.requests, u.tokens);
  }

  /** Admit a request reserving `tokens` under `apiKey`, or refuse it; undefined: the key has no quota. */
  take(apiKey: string | undefined, tokens: number, nowMs: number): Admission | undefined {
    const limits = apiKey === undefined ? undefined : this.limitsOf(apiKey);
    if (
      !apiKey ||
      !limits ||
      (limits.requestsPerMinute === undefined && limits.tokensPerMinute === undefined)
    )
      return undefined;
    const key = quotaKeyId(apiKey);
    const w = this.window(key);
    const used = w.used(nowMs);
    const refused = admit(limits, used, tokens, nowMs);
    if (refused) return { headers: rateLimitHeaders(limits, used, nowMs), refused, settle: () => {} };
    const event = (requests: number, delta: number) => {
      w.add(nowMs, requests, delta);
      this.publish({ key, gateway: this.instance, requests, tokens: delta, atMs: nowMs });
    };
    event(1, tokens);
    let settled = false;
    return {
      headers: rateLimitHeaders(limits, w.used(nowMs), nowMs),
      settle: (usedTokens) => {
        if (settled || usedTokens === tokens) return;
        settled = true;
        event(0, usedTokens - tokens);
      },
    };
  }

  /** A key's usage over the minute before `nowMs`. */
  used(apiKey: string, nowMs: number): { requests: number; tokens: number; oldestMs: number | undefined } {
    return this.window(quotaKeyId(apiKey)).used(nowMs);
  }

  private window(key: string): QuotaWindow {
    let w = this.windows.get(key);
    if (!w) {
      w = new QuotaWindow();
      this.windows.set(key, w);
    }
    return w;
  }
}
