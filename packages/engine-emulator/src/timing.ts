import type { PerformanceModel } from "@sageserve/engine";
import type { PromptTiming } from "@sageserve/protocol";

/**
 * Idle prefill times of emulators running `speedup` times as fast as the measured hardware (as
 * `startEmulator` times them): what the dashboard judges SLO feasibility by in a cluster of emulators.
 * The measured prompt range is the profile's, whatever the speed.
 */
export function emulatorPromptTiming(perf: PerformanceModel, speedup = 1): PromptTiming {
  return {
    has: (model, gpu) => perf.has(model, gpu),
    prefillMs: (model, gpu, promptTokens) => perf.prefillMs(model, gpu, promptTokens) / speedup,
    measuredPromptTokens: (model, gpu) => perf.measuredPromptTokens(model, gpu),
  };
}
