import type { Tier } from "@sageserve/protocol";
import { z } from "zod";
import type { OutputRequest } from "./output.js";

/** The parts of the OpenAI request bodies the emulator reads; anything else is accepted and ignored. */
const Common = {
  model: z.string().min(1),
  max_tokens: z.number().int().positive().max(1_000_000).optional(),
  stream: z.boolean().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).partial().optional(),
  /** vLLM's scheduling priority: an integer, lower first, 0 when absent (`priorityTier`). */
  priority: z.number().int().optional(),
  seed: z.number().int().nullish(),
  /** Choices per prompt. */
  n: z.number().int().min(1).max(16).nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
};

export const CompletionBody = z.object({
  ...Common,
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  /** Completions: how many alternatives per token to report (0-5). */
  logprobs: z.number().int().min(0).max(5).nullish(),
});

const Tool = z.object({
  type: z.literal("function"),
  function: z
    .object({
      name: z.string().min(1),
      parameters: z
        .object({
          properties: z.record(z.string(), z.unknown()).optional(),
          required: z.array(z.string()).optional(),
        })
        .passthrough()
        .optional(),
    })
    .passthrough(),
});

export const ChatBody = z.object({
  ...Common,
  max_completion_tokens: z.number().int().positive().max(1_000_000).optional(),
  tools: z.array(Tool).nullish(),
  tool_choice: z
    .union([
      z.enum(["none", "auto", "required"]),
      z.object({ type: z.literal("function"), function: z.object({ name: z.string() }) }),
    ])
    .nullish(),
  logprobs: z.boolean().nullish(),
  response_format: z
    .object({
      type: z.string(),
      json_schema: z
        .object({
          schema: z
            .object({
              properties: z.record(z.string(), z.unknown()).optional(),
              required: z.array(z.string()).optional(),
            })
            .passthrough()
            .optional(),
        })
        .passthrough()
        .optional(),
    })
    .passthrough()
    .nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
  messages: z
    .array(
      z.object({
        role: z.string(),
        // An assistant turn that called tools may have no content at all.
        content: z
          .union([
            z.string(),
            z.array(z.object({ type: z.string(), text: z.string().optional() }).passthrough()),
            z.null(),
          ])
          .optional(),
      }),
    )
    .min(1),
});

/** vLLM's `--scheduling-policy`: `fcfs` (its default) or `priority`. */
export const SCHEDULING_POLICIES = ["fcfs", "priority"] as const;
export type SchedulingPolicy = (typeof SCHEDULING_POLICIES)[number];

/**
 * The tier a request is scheduled as. Under `priority`, its `priority` read as SageServe's node agents
 * send it to vLLM (0 IW-fast, 1 IW-normal, 2 NIW; below 0 is IW-fast, above 2 NIW), and an absent one
 * is 0, as vLLM's default — IW-fast. Under `fcfs` vLLM queues every request alike in arrival order
 * (the v1 engine ignores a priority; v0 refused a non-zero one): every request is priority 0, IW-fast.
 */
export function priorityTier(priority: number | undefined, policy: SchedulingPolicy): Tier {
  const p = policy === "priority" ? (priority ?? 0) : 0;
  return p <= 0 ? "iw-fast" : p === 1 ? "iw-normal" : "niw";
}

/** Rough token count of text (≈ 4 characters per token, as tokenizers average on English). */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

export function chatPromptTokens(body: z.output<typeof ChatBody>): number {
  let n = 3;
  for (const m of body.messages) {
    const text =
      typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text ?? "").join(" ");
    n += 4 + estimateTokens(text);
  }
  return n;
}

export interface OpenAiError {
  status: number;
  body: { error: { message: string; type: string; param: string | null; code: string | null } };
}

export function openAiError(
  status: number,
  message: string,
  type: string,
  code: string | null = null,
  param: string | null = null,
): OpenAiError {
  return { status, body: { error: { message, type, param, code } } };
}

const WORDS = [
  " the",
  " of",
  " and",
  " to",
  " a",
  " in",
  " is",
  " that",
  " for",
  " it",
  " as",
  " with",
  " on",
  " be",
  " at",
  " by",
  " this",
  " from",
  " or",
  " an",
];

/** Deterministic filler text: token i of request `seed`. */
export function tokenText(seed: number, i: number): string {
  // Any safe integer seed, negative ones too (a client's `seed`: -5 used to index past the list, a 500).
  const n = WORDS.length;
  const s = ((seed % n) + n) % n;
  return WORDS[(s * 31 + i * 7) % n]!;
}

/**
 * The tool a chat request has the model call, if any: the function `tool_choice` names, else the first
 * tool unless `tool_choice` is "none"; its argument is the first required (else first) parameter.
 */
export function chosenTool(body: z.output<typeof ChatBody>): { name: string; argument: string } | undefined {
  const tools = body.tools ?? [];
  const choice = body.tool_choice;
  if (tools.length === 0 || choice === "none") return undefined;
  const named = typeof choice === "object" && choice ? choice.function.name : undefined;
  const tool = (named ? tools.find((t) => t.function.name === named) : undefined) ?? tools[0]!;
  const params = tool.function.parameters;
  const argument = params?.required?.[0] ?? Object.keys(params?.properties ?? {})[0] ?? "input";
  return { name: tool.function.name, argument };
}

/** What one sequence of a request asks of the output (`planOutput`): tools, stop, logprobs, its seed. */
export function outputRequest(
  body: z.output<typeof ChatBody> | z.output<typeof CompletionBody>,
  chat: boolean,
  maxTokens: number,
  seed: number,
): OutputRequest {
  const logprobs = chat
    ? (body as z.output<typeof ChatBody>).logprobs
      ? { top: (body as z.output<typeof ChatBody>).top_logprobs ?? 0 }
      : undefined
    : typeof (body as z.output<typeof CompletionBody>).logprobs === "number"
      ? { top: (body as z.output<typeof CompletionBody>).logprobs! }
      : undefined;
  return {
    chat,
    maxTokens,
    seed,
    tool: chat ? chosenTool(body as z.output<typeof ChatBody>) : undefined,
    stop: body.stop == null ? undefined : [body.stop].flat(),
    json: chat ? jsonFormat(body as z.output<typeof ChatBody>) : undefined,
    logprobs,
  };
}

/** A JSON `response_format` (json_object, json_schema): the key the answer's object has. */
function jsonFormat(body: z.output<typeof ChatBody>): { key: string } | undefined {
  const f = body.response_format;
  if (!f || (f.type !== "json_object" && f.type !== "json_schema")) return undefined;
  const schema = f.json_schema?.schema;
  return { key: schema?.required?.[0] ?? Object.keys(schema?.properties ?? {})[0] ?? "answer" };
}
