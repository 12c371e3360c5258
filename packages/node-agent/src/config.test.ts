import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadNodeAgentConfig } from "./config.js";
import { ENGINE_METRICS, engineLoad, parsePrometheus } from "./metrics.js";

describe("node agent configuration", () => {
  const dir = mkdtempSync(join(tmpdir(), "sage-node-"));
  const file = join(dir, "node.json");

  it("reads a file, fills defaults and lets the environment override identity and engine", () => {
    writeFileSync(
      file,
      JSON.stringify({
        nodeId: "n1",
        region: "westus",
        gpuType: "h100",
        engine: { url: "http://127.0.0.1:8000", model: "m" },
      }),
    );
    const c = loadNodeAgentConfig(file, { SAGE_REGION: "eastus", SAGE_MODEL: "llama3.1-8b" });
    expect(c).toMatchObject({
      nodeId: "n1",
      region: "eastus",
      gpus: 8,
      heartbeatMs: 5000,
      engine: { kind: "vllm", model: "llama3.1-8b" },
    });
  });

  it("names every invalid field", () => {
    writeFileSync(
      file,
      JSON.stringify({
        nodeId: "n 1",
        region: "w",
        gpuType: "h100",
        engine: { url: "nope", model: "m", kind: "x" },
        extra: 1,
      }),
    );
    expect(() => loadNodeAgentConfig(file, {})).toThrowError(
      /nodeId: .*engine\.url: .*engine\.kind: .*extra/,
    );
  });

  const withEngine = (engine: Record<string, unknown>) =>
    writeFileSync(
      file,
      JSON.stringify({
        nodeId: "n1",
        region: "westus",
        gpuType: "h100",
        engine: { url: "http://127.0.0.1:8000", model: "m", ...engine },
      }),
    );

  it("leaves engine priority off unless asked; takes it on from the file, the environment or the command line", () => {
    withEngine({ kind: "vllm" });
    expect(loadNodeAgentConfig(file, {}).engine.priority).toBeUndefined();
    expect(loadNodeAgentConfig(file, { SAGE_ENGINE_PRIORITY: "on" }).engine.priority).toBe(true);
    withEngine({ kind: "sglang", priority: { values: { "iw-fast": 30, "iw-normal": 15, niw: 0 } } });
    // `on` keeps the file's mapping; `off` wins over the file and the environment.
    expect(loadNodeAgentConfig(file, {}, { enginePriority: "on" }).engine.priority).toEqual({
      values: { "iw-fast": 30, "iw-normal": 15, niw: 0 },
    });
    expect(
      loadNodeAgentConfig(file, { SAGE_ENGINE_PRIORITY: "on" }, { enginePriority: "off" }).engine.priority,
    ).toBe(false);
  });

  it.each([
    [
      "a kind without priority",
      { kind: "tgi", priority: true },
      /engine\.priority: engine kind tgi has no request priority/,
    ],
    [
      "a llama.cpp mapping",
      { kind: "llamacpp", priority: { field: "priority" } },
      /engine\.priority: .*llamacpp/,
    ],
    [
      "a non-integer value",
      { priority: { values: { "iw-fast": 0.5, "iw-normal": 1, niw: 2 } } },
      /engine\.priority/,
    ],
    ["a missing tier", { priority: { values: { "iw-fast": 0, niw: 2 } } }, /engine\.priority/],
    ["an unknown key", { priority: { level: 1 } }, /engine\.priority/],
    ["a field that is not a name", { priority: { field: "a b" } }, /engine\.priority/],
    [
      "an inverted mapping",
      { kind: "vllm", priority: { values: { "iw-fast": 2, "iw-normal": 1, niw: 0 } } },
      /engine\.priority: values must rank iw-fast ≥ iw-normal ≥ niw.*vllm schedules lower values first/,
    ],
  ])("rejects %s with a CONFIG error naming engine.priority", (_what, engine, message) => {
    withEngine(engine);
    expect(() => loadNodeAgentConfig(file, {})).toThrowError(message);
    try {
      loadNodeAgentConfig(file, {});
    } catch (e) {
      expect((e as { code: string }).code).toBe("CONFIG");
    }
  });

  it("rejects an engine priority override other than on or off", () => {
    withEngine({ kind: "vllm" });
    expect(() => loadNodeAgentConfig(file, { SAGE_ENGINE_PRIORITY: "yes" })).toThrowError(/engine\.priority/);
    withEngine({ kind: "tgi" });
    expect(() => loadNodeAgentConfig(file, {}, { enginePriority: "on" })).toThrowError(
      /tgi has no request priority/,
    );
  });
});

describe("engine metric table", () => {
  it.each([
    [
      "vllm",
      'vllm:num_requests_running{model_name="m"} 3\nvllm:num_requests_waiting{model_name="m"} 1\nvllm:kv_cache_usage_perc{model_name="m"} 0.42\n',
    ],
    [
      "vllm",
      "# HELP x\nvllm:num_requests_running 3\nvllm:num_requests_waiting 1\nvllm:gpu_cache_usage_perc 0.42\n",
    ],
    ["sglang", "sglang:num_running_reqs 3\nsglang:num_queue_reqs 1\nsglang:token_usage 0.42\n"],
    [
      "llamacpp",
      "llamacpp:requests_processing 3\nllamacpp:requests_deferred 1\nllamacpp:kv_cache_usage_ratio 0.42\n",
    ],
  ] as const)("reads %s load from its own metric names", (kind, text) => {
    expect(engineLoad(kind, parsePrometheus(text))).toEqual({ running: 3, waiting: 1, kvUtilization: 0.42 });
  });

  it("maps every engine kind", () => {
    for (const names of Object.values(ENGINE_METRICS)) expect(names.running.length).toBeGreaterThan(0);
  });
});
