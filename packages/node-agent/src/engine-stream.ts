/**
 * Reading an engine's OpenAI SSE stream, pure: one `data:` payload in, what it carries for the
 * InferenceChunk out. Text, tool-call deltas, log probabilities and finish reasons are relayed as the
 * engine sent them; a `usage` event (stream_options.include_usage) gives the engine's token counts.
 */

export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter";
const FINISH = new Set<string>(["stop", "length", "tool_calls", "content_filter"]);

/** One choice's step in an engine event. */
export interface ChoiceStep {
  /** Choice index (`n` > 1, or a batch of prompts). */
  index: number;
  text: string;
  toolCalls?: Record<string, unknown>[];
  logprobs?: Record<string, unknown>;
  finish?: FinishReason;
}

export interface EngineEvent {
  /** The generated steps of this event, one per choice it carries (none: e.g. the usage event). */
  choices: ChoiceStep[];
  usage?: { promptTokens: number; completionTokens: number };
}

interface EngineChoice {
  index?: number;
  text?: string;
  delta?: { content?: string | null; tool_calls?: unknown };
  logprobs?: unknown;
  finish_reason?: string | null;
}

const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const count = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : undefined;

/** One SSE `data:` payload of an engine's stream (`[DONE]` and non-JSON: undefined). */
export function readEngineEvent(data: string): EngineEvent | undefined {
  if (data === "[DONE]") return undefined;
  let j: {
    choices?: EngineChoice[];
    usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
  };
  try {
    j = JSON.parse(data) as typeof j;
  } catch {
    return undefined;
  }
  const out: EngineEvent = { choices: (Array.isArray(j.choices) ? j.choices : []).filter(isMap).map(step) };
  const prompt = count(j.usage?.prompt_tokens);
  const completion = count(j.usage?.completion_tokens);
  if (prompt !== undefined && completion !== undefined)
    out.usage = { promptTokens: prompt, completionTokens: completion };
  return out;
}

function step(c: EngineChoice): ChoiceStep {
  const out: ChoiceStep = { index: count(c.index) ?? 0, text: c.text ?? c.delta?.content ?? "" };
  const tools = c.delta?.tool_calls;
  if (Array.isArray(tools) && tools.length > 0) out.toolCalls = tools.filter(isMap);
  if (isMap(c.logprobs)) out.logprobs = c.logprobs;
  if (c.finish_reason && FINISH.has(c.finish_reason)) out.finish = c.finish_reason as FinishReason;
  return out;
}

/** The events of an engine's SSE body, as they arrive (`data:` lines split on blank lines). */
export async function* engineEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<EngineEvent> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const part of body) {
    buf += decoder.decode(part, { stream: true });
    for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
      const event = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!event.startsWith("data: ")) continue;
      const e = readEngineEvent(event.slice(6));
      if (e) yield e;
    }
  }
}
