/**
 * Reading engine load from Prometheus text. Each engine kind names its metrics
 * differently; this table is the one place that maps them to what SageServe
 * needs (running and waiting requests, KV-cache use as a fraction).
 */
export const ENGINE_KINDS = ["vllm", "sglang", "tgi", "llamacpp"] as const;
export type EngineKind = (typeof ENGINE_KINDS)[number];

export const ENGINE_METRICS: Record<EngineKind, { running: string[]; waiting: string[]; kvUsage: string[] }> =
  {
    // vLLM v1 names first, then v0.
    vllm: {
      running: ["vllm:num_requests_running"],
      waiting: ["vllm:num_requests_waiting"],
      kvUsage: ["vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"],
    },
    sglang: {
      running: ["sglang:num_running_reqs"],
      waiting: ["sglang:num_queue_reqs"],
      kvUsage: ["sglang:token_usage"],
    },
    tgi: { running: ["tgi_batch_current_size"], waiting: ["tgi_queue_size"], kvUsage: [] },
    llamacpp: {
      running: ["llamacpp:requests_processing"],
      waiting: ["llamacpp:requests_deferred"],
      kvUsage: ["llamacpp:kv_cache_usage_ratio"],
    },
  };

/** Sum of every sample of each metric name (labels ignored), from Prometheus exposition text. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([^\s]+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    out.set(m[1]!, (out.get(m[1]!) ?? 0) + v);
  }
  return out;
}

export interface EngineLoad {
  running: number;
  waiting: number;
  kvUtilization: number;
}

export function engineLoad(kind: EngineKind, metrics: Map<string, number>): EngineLoad {
  const names = ENGINE_METRICS[kind];
  const first = (list: string[]) => list.map((n) => metrics.get(n)).find((v) => v !== undefined);
  const kv = first(names.kvUsage) ?? 0;
  return {
    running: Math.max(0, Math.round(first(names.running) ?? 0)),
    waiting: Math.max(0, Math.round(first(names.waiting) ?? 0)),
    kvUtilization: Math.min(1, Math.max(0, kv)),
  };
}
