import { SageError, TIERS, type Tier } from "@sageserve/protocol";
import type { EngineKind } from "./metrics.js";

/**
 * Request priority per engine kind: which body field carries a request's tier to the engine's
 * scheduler, the number each tier becomes, and which way the engine reads the numbers. This table is
 * the one place that knows; `docs/operations.md` says where each row comes from.
 */
export type PriorityOrder = "lower-first" | "higher-first";

export interface EnginePriority {
  /** Body field of the OpenAI request (both engines that have one call it `priority`). */
  field: string;
  /** The number sent for each tier. */
  values: Record<Tier, number>;
  /** Which values the engine schedules first. */
  order: PriorityOrder;
}

/** What one engine kind supports, and the flag its server must be started with for the field to count. */
export interface EnginePrioritySupport extends EnginePriority {
  engineFlag: string;
}

export const ENGINE_PRIORITY: Record<EngineKind, EnginePrioritySupport | undefined> = {
  // vLLM (v0 engine since 0.6.3, PRs #5958/#8850; v1 engine, PR #19057): `priority` int, default 0,
  // lower first, ties by arrival.
  vllm: {
    field: "priority",
    values: { "iw-fast": 0, "iw-normal": 1, niw: 2 },
    order: "lower-first",
    engineFlag: "--scheduling-policy priority",
  },
  // SGLang: `priority` int, higher first unless --schedule-low-priority-values-first. A waiting
  // request preempts running ones only when it outranks them by more than
  // --priority-scheduling-preemption-threshold (default 10): with 20/10/0, IW-fast may preempt NIW,
  // and nothing else preempts.
  sglang: {
    field: "priority",
    values: { "iw-fast": 20, "iw-normal": 10, niw: 0 },
    order: "higher-first",
    engineFlag: "--enable-priority-scheduling",
  },
  // Neither TGI nor the llama.cpp server has a per-request scheduling priority.
  tgi: undefined,
  llamacpp: undefined,
};

/** `engine.priority` as configured: off, on (the kind's row), or on with parts of the row replaced. */
export type EnginePrioritySetting =
  | boolean
  | { field?: string; values?: Record<Tier, number>; order?: PriorityOrder };

/** Body fields the agent itself sets or the request cannot do without: a priority must not overwrite them. */
const RESERVED_FIELDS = new Set([
  "model",
  "stream",
  "messages",
  "prompt",
  "max_tokens",
  "max_completion_tokens",
]);

/**
 * Why `setting` cannot be used with `kind`, or undefined when it can. Shared by the config loader
 * (which reports it under `engine.priority`) and `compilePriority`.
 */
export function priorityProblem(
  kind: EngineKind,
  setting: EnginePrioritySetting | undefined,
): string | undefined {
  if (setting === undefined || setting === false) return undefined;
  const support = ENGINE_PRIORITY[kind];
  if (!support) return `engine kind ${kind} has no request priority; leave engine.priority off`;
  if (setting === true) return undefined;
  const field = setting.field ?? support.field;
  if (RESERVED_FIELDS.has(field)) return `field ${field} is part of the request itself`;
  const order = setting.order ?? support.order;
  const values = setting.values ?? support.values;
  // An inverted table would put batch work ahead of interactive work: vLLM and SGLang read the same
  // field in opposite directions, so this is the likely mistake.
  const ranks = TIERS.map((t) => values[t]);
  const sorted = ranks.every((v, i) =>
    i === 0 ? true : order === "lower-first" ? v >= ranks[i - 1]! : v <= ranks[i - 1]!,
  );
  if (!sorted)
    return `values must rank ${TIERS.join(" ≥ ")} in urgency: ${kind} schedules ${order === "lower-first" ? "lower" : "higher"} values first (set order if the engine was started otherwise)`;
  return undefined;
}

/** The priority to send, compiled once from the kind and the setting (undefined = send none). */
export function compilePriority(
  kind: EngineKind,
  setting: EnginePrioritySetting | undefined,
): EnginePriority | undefined {
  const problem = priorityProblem(kind, setting);
  if (problem) throw new SageError("CONFIG", `engine.priority: ${problem}`);
  const support = ENGINE_PRIORITY[kind];
  if (!support || setting === undefined || setting === false) return undefined;
  if (setting === true) return { field: support.field, values: support.values, order: support.order };
  return {
    field: setting.field ?? support.field,
    values: setting.values ?? support.values,
    order: setting.order ?? support.order,
  };
}

/** What the agent asks of the engine for one routed request. */
export interface EngineCall {
  path: "/v1/chat/completions" | "/v1/completions";
  body: Record<string, unknown>;
}

/**
 * The engine request for a routed request: the client's body (or a synthetic prompt of the routed
 * size when there is none) for the model this instance serves, streamed, with the tier as the
 * engine's priority when one is configured. The tier overrides any `priority` the client sent: the
 * tier is what the client paid for.
 */
export function engineCall(
  r: { tier: Tier; inputTokens: number; maxOutputTokens: number; body?: Record<string, unknown> | undefined },
  model: string,
  priority: EnginePriority | undefined,
  /** Ask for the engine's token counts (`stream_options.include_usage`; vLLM and SGLang honour it). */
  askUsage = false,
): EngineCall {
  const chat = Array.isArray((r.body as { messages?: unknown } | undefined)?.messages);
  const body: Record<string, unknown> = r.body
    ? { ...r.body, model, stream: true }
    : {
        model,
        prompt: "x ".repeat(Math.max(1, r.inputTokens * 2)),
        max_tokens: Math.max(1, r.maxOutputTokens),
        stream: true,
      };
  if (priority) body[priority.field] = priority.values[r.tier];
  if (askUsage) {
    const asked = body.stream_options;
    body.stream_options = { ...(typeof asked === "object" && asked ? asked : {}), include_usage: true };
  }
  return { path: chat ? "/v1/chat/completions" : "/v1/completions", body };
}
