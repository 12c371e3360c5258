import type { IncomingMessage } from "node:http";
import { errorMessage } from "@sageserve/protocol";
import { type HttpError, readBody } from "./http.js";

/** Most choices per prompt (`n`): each is a sequence with its own KV at the engine. */
export const MAX_CHOICES = 16;

/** Deepest JSON nesting a request body may have (an OpenAI body nests a handful of levels). */
export const MAX_BODY_DEPTH = 64;

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const ROLES = new Set(["system", "developer", "user", "assistant", "tool", "function"]);

/**
 * The OpenAI request fields the gateway reads or the engine would refuse, checked before anything
 * is routed: a body that passes is one an engine accepts (unknown fields pass through untouched).
 * Items of `messages` and `prompt` used to go unchecked: `messages: [null]` was a 500.
 */
export function checkBody(body: Record<string, unknown>, chat: boolean): HttpError | undefined {
  const bad = (param: string, message: string): HttpError => ({
    status: 400,
    message: `${param}: ${message}`,
    type: "invalid_request_error",
    code: "invalid_value",
    param,
  });
  if (typeof body.model !== "string" || !body.model) return bad("model", "required string");
  if (chat) {
    if (!Array.isArray(body.messages) || body.messages.length === 0)
      return bad("messages", "a non-empty array is required");
    for (const [i, m] of body.messages.entries()) {
      if (!isMap(m)) return bad(`messages.${i}`, "must be an object");
      if (typeof m.role !== "string" || !ROLES.has(m.role))
        return bad(`messages.${i}.role`, `one of ${[...ROLES].join(", ")}`);
      const c = m.content;
      if (Array.isArray(c)) {
        for (const [j, part] of c.entries()) {
          if (!isMap(part) || typeof part.type !== "string")
            return bad(`messages.${i}.content.${j}`, "a content part object with a string type");
          if (part.text !== undefined && typeof part.text !== "string")
            return bad(`messages.${i}.content.${j}.text`, "must be a string");
        }
      } else if (c !== null && c !== undefined && typeof c !== "string")
        return bad(`messages.${i}.content`, "a string, an array of content parts, or null");
    }
  } else if (typeof body.prompt !== "string") {
    if (!Array.isArray(body.prompt) || body.prompt.length === 0)
      return bad("prompt", "a string or a non-empty array of strings is required");
    if (body.prompt.some((p) => typeof p !== "string")) return bad("prompt", "every item must be a string");
  }
  for (const k of ["max_tokens", "max_completion_tokens"]) {
    const v = body[k];
    if (
      v !== undefined &&
      v !== null &&
      (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 1_000_000)
    )
      return bad(k, "an integer from 1 to 1,000,000");
  }
  const ranges: [string, number, number][] = [
    ["temperature", 0, 2],
    ["top_p", 0, 1],
    ["presence_penalty", -2, 2],
    ["frequency_penalty", -2, 2],
  ];
  for (const [k, lo, hi] of ranges) {
    const v = body[k];
    if (v !== undefined && v !== null && (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi))
      return bad(k, `a number from ${lo} to ${hi}`);
  }
  if (
    body.n !== undefined &&
    body.n !== null &&
    (typeof body.n !== "number" || !Number.isInteger(body.n) || body.n < 1 || body.n > MAX_CHOICES)
  )
    return bad("n", `an integer from 1 to ${MAX_CHOICES}`);
  if (body.seed !== undefined && body.seed !== null && !Number.isSafeInteger(body.seed))
    return bad("seed", "an integer");
  if (body.stream !== undefined && body.stream !== null && typeof body.stream !== "boolean")
    return bad("stream", "a boolean");
  if (body.stream_options !== undefined && body.stream_options !== null && !isMap(body.stream_options))
    return bad("stream_options", "an object");
  const stop = body.stop;
  if (
    stop !== undefined &&
    stop !== null &&
    typeof stop !== "string" &&
    !(Array.isArray(stop) && stop.length <= 4 && stop.every((x) => typeof x === "string"))
  )
    return bad("stop", "a string or up to 4 strings");
  if (body.user !== undefined && typeof body.user !== "string") return bad("user", "a string");
  return undefined;
}

/** Is `v` nested deeper than `max` arrays/objects? Iterative: the check itself must not overflow. */
export function depthExceeds(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length > 0) {
    const [x, d] = stack.pop()!;
    if (typeof x !== "object" || x === null) continue;
    if (d > max) return true;
    for (const child of Array.isArray(x) ? x : Object.values(x)) {
      if (typeof child === "object" && child !== null) stack.push([child, d + 1]);
    }
  }
  return false;
}

/** A request body as a JSON object no deeper than MAX_BODY_DEPTH (and at most `limit` bytes), or the 4xx to answer. */
export async function readJsonBody(
  req: IncomingMessage,
  limit: number,
): Promise<{ value: Record<string, unknown> } | HttpError> {
  const raw = await readBody(req, limit);
  if (typeof raw !== "string") return raw;
  let value: Record<string, unknown>;
  try {
    const v = JSON.parse(raw) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("expected a JSON object");
    value = v as Record<string, unknown>;
  } catch (e) {
    return {
      status: 400,
      message: `request body is not valid JSON: ${errorMessage(e)}`,
      type: "invalid_request_error",
      code: "invalid_json",
    };
  }
  // Deeper bodies overflowed the stack when encoded for NATS (a 503) or stringified (a 500).
  if (depthExceeds(value, MAX_BODY_DEPTH))
    return {
      status: 400,
      message: `request body nests deeper than ${MAX_BODY_DEPTH} levels`,
      type: "invalid_request_error",
      code: "invalid_json",
    };
  return { value };
}
