import type { HttpError } from "./http.js";

/** An API key's settings: its name, default tier and optional rate limit (a token bucket). */
export interface ApiKey {
  name: string;
  tier?: "fast" | "normal" | "batch";
  requestsPerSecond?: number;
  burst?: number;
  /** Quotas shared by every gateway replica (`quota.ts`): requests and tokens per sliding minute. */
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

/**
 * Who is calling: the key and its default tier, or the 401 to answer. No keys configured = no key
 * required. `authorization` is the header's value.
 */
export function authenticate(
  keys: Record<string, ApiKey> | undefined,
  authorization: string | undefined,
): { tier?: string; key?: string } | HttpError {
  if (!keys || Object.keys(keys).length === 0) return {};
  // The scheme is case-insensitive (RFC 9110): `bearer <key>` is a key too.
  const m = /^bearer\s+(.*)$/i.exec(authorization ?? "");
  const key = m ? m[1]!.trim() : "";
  // Own keys only: `Bearer constructor` (or toString, __proto__…) found a function on the
  // prototype and was let in without a key (found by test/fuzz-gateway).
  const entry = Object.hasOwn(keys, key) ? keys[key] : undefined;
  if (!key)
    return {
      status: 401,
      message: "missing API key: send 'Authorization: Bearer <key>'",
      type: "invalid_request_error",
      code: "missing_api_key",
    };
  if (!entry)
    return {
      status: 401,
      message: "invalid API key",
      type: "invalid_request_error",
      code: "invalid_api_key",
    };
  return entry.tier ? { tier: entry.tier, key } : { key };
}

export interface Bucket {
  tokens: number;
  atMs: number;
}

/**
 * One token-bucket step, pure: the bucket after a request at `nowMs`, and the 429 when it does not fit
 * (with the seconds until one would). `bucket` undefined = a full bucket.
 */
export function takeToken(
  bucket: Bucket | undefined,
  rate: number,
  burst: number,
  nowMs: number,
): { bucket: Bucket; refused?: HttpError } {
  const start = bucket ?? { tokens: burst, atMs: nowMs };
  const tokens = Math.min(burst, start.tokens + ((nowMs - start.atMs) / 1000) * rate);
  if (tokens >= 1) return { bucket: { tokens: tokens - 1, atMs: nowMs } };
  return {
    bucket: { tokens, atMs: nowMs },
    refused: {
      status: 429,
      message: `rate limit of ${rate} requests/s for this key exceeded`,
      type: "rate_limit_exceeded",
      code: "rate_limit_exceeded",
      retryAfterS: Math.max(1, Math.ceil((1 - tokens) / rate)),
    },
  };
}

/** Token buckets per API key (this gateway's; not shared across replicas). */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly keys: Record<string, ApiKey> | undefined) {}

  /** Over the key's rate: the 429 to answer; else undefined (and the request is counted). */
  take(key: string | undefined, nowMs: number): HttpError | undefined {
    const entry = key && this.keys && Object.hasOwn(this.keys, key) ? this.keys[key] : undefined;
    if (!key || !entry?.requestsPerSecond) return undefined;
    const rate = entry.requestsPerSecond;
    const step = takeToken(this.buckets.get(key), rate, entry.burst ?? Math.max(1, rate), nowMs);
    this.buckets.set(key, step.bucket);
    return step.refused;
  }
}
