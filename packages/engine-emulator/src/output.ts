import { tokenText } from "./openai.js";

/**
 * What the emulator answers, token by token, pure and deterministic: filler text from a seed (the
 * request's `seed`, else one from its id), cut at the first `stop` string, or — when the request
 * offers `tools` and does not say `tool_choice: "none"` — one call of the named tool (else the first)
 * with its arguments streamed in pieces, as a model that decided to call it would; with a JSON
 * `response_format`, one JSON object (`{"<first schema property>": "<filler>"}`). Log probabilities
 * when asked (`logprobs`), made up but stable.
 */

export interface OutputRequest {
  chat: boolean;
  maxTokens: number;
  seed: number;
  /** The tool to call (chat only), and the argument to fill. */
  tool?: { name: string; argument: string } | undefined;
  stop?: string[] | undefined;
  /** `response_format` json_object / json_schema: the answer is a JSON object with this key. */
  json?: { key: string } | undefined;
  /** Chat: `logprobs: true` (with `top_logprobs`); completions: `logprobs: <n>`. */
  logprobs?: { top: number } | undefined;
}

export type OutputFinish = "length" | "stop" | "tool_calls";

export interface OutputToken {
  text: string;
  /** Chat delta of a tool call (OpenAI `delta.tool_calls`). */
  toolCalls?: Record<string, unknown>[];
  logprobs?: Record<string, unknown>;
}

export interface Output {
  /** Tokens the answer has (≤ maxTokens). */
  tokens: number;
  finish: OutputFinish;
  token(i: number): OutputToken;
  /** The whole answer (a request not streamed). */
  whole(): { text: string; toolCalls?: Record<string, unknown>[]; logprobs?: Record<string, unknown> };
}

const PIECE_CHARS = 6;

export function planOutput(r: OutputRequest): Output {
  if (r.tool) return toolOutput(r, r.tool);
  return r.json ? jsonOutput(r, r.json.key) : textOutput(r);
}

/** A JSON object `{key: "<filler>"}` in pieces; cut short by max_tokens (invalid JSON, as a model's). */
function jsonOutput(r: OutputRequest, key: string): Output {
  const pieces = argumentPieces(r.seed, key);
  const tokens = Math.min(r.maxTokens, pieces.length);
  return {
    tokens,
    finish: tokens === pieces.length ? "stop" : "length",
    token: (i) => ({ text: pieces[i] ?? "" }),
    whole: () => ({ text: pieces.slice(0, tokens).join("") }),
  };
}

/** `{"<key>":"<three filler words>"}` in pieces of a few characters, one per token. */
function argumentPieces(seed: number, key: string): string[] {
  const value = Array.from({ length: 3 }, (_, i) => tokenText(seed, i))
    .join("")
    .trim();
  const json = JSON.stringify({ [key]: value });
  const pieces: string[] = [];
  for (let i = 0; i < json.length; i += PIECE_CHARS) pieces.push(json.slice(i, i + PIECE_CHARS));
  return pieces;
}

function textOutput(r: OutputRequest): Output {
  let tokens = r.maxTokens;
  let finish: OutputFinish = "length";
  let cut = Number.POSITIVE_INFINITY;
  const stops = (r.stop ?? []).filter((s) => s.length > 0);
  if (stops.length) {
    let full = "";
    for (let i = 0; i < r.maxTokens; i++) {
      full += tokenText(r.seed, i);
      const at = Math.min(...stops.map((s) => full.indexOf(s)).filter((x) => x >= 0));
      if (Number.isFinite(at)) {
        tokens = i + 1;
        finish = "stop";
        cut = at;
        break;
      }
    }
  }
  const starts: number[] = [];
  for (let i = 0, at = 0; i < tokens; i++) {
    starts.push(at);
    at += tokenText(r.seed, i).length;
  }
  const token = (i: number): OutputToken => {
    const t = tokenText(r.seed, i);
    const text = t.slice(0, Math.max(0, cut - starts[i]!));
    return r.logprobs ? { text, logprobs: logprobsOf(r, text, i, starts[i]!) } : { text };
  };
  return {
    tokens,
    finish,
    token,
    whole() {
      const all = Array.from({ length: tokens }, (_, i) => token(i));
      const text = all.map((t) => t.text).join("");
      const lp = joinLogprobs(all.flatMap((t) => (t.logprobs ? [t.logprobs] : [])));
      return lp ? { text, logprobs: lp } : { text };
    },
  };
}

function toolOutput(r: OutputRequest, tool: { name: string; argument: string }): Output {
  const pieces = argumentPieces(r.seed, tool.argument);
  const complete = 1 + pieces.length;
  const tokens = Math.min(r.maxTokens, complete);
  const id = `call_${r.seed.toString(16).padStart(8, "0")}`;
  const token = (i: number): OutputToken =>
    i === 0
      ? {
          text: "",
          toolCalls: [{ index: 0, id, type: "function", function: { name: tool.name, arguments: "" } }],
        }
      : { text: "", toolCalls: [{ index: 0, function: { arguments: pieces[i - 1] ?? "" } }] };
  return {
    tokens,
    finish: tokens === complete ? "tool_calls" : "length",
    token,
    whole: () => ({
      text: "",
      toolCalls: [
        {
          id,
          type: "function",
          function: { name: tool.name, arguments: pieces.slice(0, tokens - 1).join("") },
        },
      ],
    }),
  };
}

/** A made-up but stable log probability for token i, and its alternatives. */
function logprobsOf(r: OutputRequest, text: string, i: number, offset: number): Record<string, unknown> {
  const logprob = -(((r.seed + i * 3) % 9) + 1) / 10;
  const alternatives = Array.from({ length: r.logprobs!.top }, (_, k) => ({
    token: tokenText(r.seed + k + 1, i),
    logprob: logprob - (k + 1) / 2,
  }));
  if (r.chat)
    return {
      content: [
        {
          token: text,
          logprob,
          bytes: [...Buffer.from(text)],
          top_logprobs: alternatives.map((a) => ({ ...a, bytes: [...Buffer.from(a.token)] })),
        },
      ],
    };
  return {
    tokens: [text],
    token_logprobs: [logprob],
    top_logprobs: [Object.fromEntries([[text, logprob], ...alternatives.map((a) => [a.token, a.logprob])])],
    text_offset: [offset],
  };
}

/** The per-token log probabilities of a whole answer in one object: each field's entries in order. */
function joinLogprobs(perToken: Record<string, unknown>[]): Record<string, unknown> | undefined {
  if (perToken.length === 0) return undefined;
  const keys = Object.keys(perToken[0]!);
  return Object.fromEntries(keys.map((k) => [k, perToken.flatMap((lp) => lp[k] as unknown[])]));
}
