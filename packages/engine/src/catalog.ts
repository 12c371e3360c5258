import { SageError } from "@sageserve/protocol";

/**
 * The models and GPU VM types the simulator knows. Model sizes and shapes follow
 * the SageServe reference configuration (configs/model_repo); each model maps to
 * a measured latency profile (A–D in perf_model_4_models.csv).
 */
export interface ModelSpec {
  id: string;
  /** Profile id in the measured data. */
  profile: string;
  weightsGB: number;
  layers: number;
  hidden: number;
}

export interface GpuSpec {
  id: string;
  /** Hardware name in the measured data. */
  hardware: string;
  gpusPerVm: number;
  memoryGBPerGpu: number;
  /** On-demand price of one 8-GPU VM per hour (USD), overridable in the scenario config. */
  vmPricePerHour: number;
}

export const MODELS: Record<string, ModelSpec> = {
  "llama2-70b": { id: "llama2-70b", profile: "A", weightsGB: 135, layers: 80, hidden: 8192 },
  "bloom-176b": { id: "bloom-176b", profile: "B", weightsGB: 329, layers: 70, hidden: 14336 },
  "llama3.1-8b": { id: "llama3.1-8b", profile: "C", weightsGB: 51, layers: 32, hidden: 4096 },
  "llama3.2-3b": { id: "llama3.2-3b", profile: "D", weightsGB: 19.5, layers: 16, hidden: 2048 },
};

export const GPUS: Record<string, GpuSpec> = {
  // $98.32/h per 8×H100 VM is the paper's price; the A100 price is Azure ND96amsr A100 v4 list price.
  h100: { id: "h100", hardware: "h100-80gb", gpusPerVm: 8, memoryGBPerGpu: 80, vmPricePerHour: 98.32 },
  a100: { id: "a100", hardware: "a100-80gb", gpusPerVm: 8, memoryGBPerGpu: 80, vmPricePerHour: 32.77 },
};

export function modelSpec(id: string): ModelSpec {
  const m = MODELS[id];
  if (!m)
    throw new SageError("UNKNOWN_MODEL", `unknown model '${id}' (known: ${Object.keys(MODELS).join(", ")})`);
  return m;
}

export function gpuSpec(id: string): GpuSpec {
  const g = GPUS[id];
  if (!g) throw new SageError("CONFIG", `unknown GPU type '${id}' (known: ${Object.keys(GPUS).join(", ")})`);
  return g;
}

/** KV-cache bytes per token: K and V, fp16, every layer (no GQA, as the reference simulator). */
export function kvBytesPerToken(m: ModelSpec): number {
  return 2 * m.hidden * m.layers * 2;
}
