import { builtinPerformanceModel } from "@sageserve/engine";
import { promptVerdict } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import { emulatorPromptTiming } from "./timing.js";

describe("emulatorPromptTiming", () => {
  it("times idle prefill as the emulator does: the measured time over the speed-up", () => {
    const perf = builtinPerformanceModel();
    // llama2-70b on H100, 8,192 tokens: 844.885 ms measured; an emulator at half speed takes 1,689.77 ms.
    const half = emulatorPromptTiming(perf, 0.5);
    expect(half.prefillMs("llama2-70b", "h100", 8_192)).toBeCloseTo(1_689.77, 2);
    expect(half.measuredPromptTokens("llama2-70b", "h100")).toBe(8_192);
    const r = { model: "llama2-70b", gpuType: "h100", tier: "iw-fast" as const, inputTokens: 8_192 };
    expect(promptVerdict(emulatorPromptTiming(perf), r).infeasible).toBe(false);
    expect(promptVerdict(half, r).infeasible).toBe(true);
    expect(half.has("llama2-70b", "tpu")).toBe(false);
  });
});
