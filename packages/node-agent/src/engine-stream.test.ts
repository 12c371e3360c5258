import { describe, expect, it } from "vitest";
import { readEngineEvent } from "./engine-stream.js";

describe("reading an engine's stream", () => {
  it("reads chat and completions text, and the finish reason", () => {
    expect(
      readEngineEvent('{"choices":[{"index":0,"delta":{"content":" the"},"finish_reason":null}]}'),
    ).toEqual({
      token: true,
      text: " the",
    });
    expect(readEngineEvent('{"choices":[{"index":0,"text":" a","finish_reason":"length"}]}')).toEqual({
      token: true,
      text: " a",
      finish: "length",
    });
  });

  it("relays tool-call deltas and log probabilities as the engine sent them", () => {
    const call = { index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "" } };
    const e = readEngineEvent(
      JSON.stringify({
        choices: [
          {
            index: 0,
            delta: { content: null, tool_calls: [call] },
            logprobs: { content: [{ token: "x", logprob: -0.5 }] },
            finish_reason: "tool_calls",
          },
        ],
      }),
    );
    expect(e).toEqual({
      token: true,
      text: "",
      toolCalls: [call],
      logprobs: { content: [{ token: "x", logprob: -0.5 }] },
      finish: "tool_calls",
    });
  });

  it("takes the engine's token counts from the usage event, which is no token", () => {
    expect(
      readEngineEvent('{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16}}'),
    ).toEqual({
      token: false,
      text: "",
      usage: { promptTokens: 12, completionTokens: 4 },
    });
  });

  it("ignores [DONE], malformed JSON and unknown finish reasons", () => {
    expect(readEngineEvent("[DONE]")).toBeUndefined();
    expect(readEngineEvent("{nope")).toBeUndefined();
    expect(readEngineEvent('{"choices":[{"text":"","finish_reason":"abort"}]}')).toEqual({
      token: true,
      text: "",
    });
    expect(readEngineEvent('{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":2}}')).toEqual({
      token: false,
      text: "",
    });
  });
});
