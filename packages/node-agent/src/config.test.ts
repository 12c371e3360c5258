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
