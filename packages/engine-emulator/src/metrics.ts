// The emulator's Prometheus metrics: vLLM's metric names read from the engine at scrape time, the
// latency histograms the engine feeds as tokens are made, and the emulator's own per-tier counter.
// Separate from the HTTP server so the metric set reads as one list, in the order /metrics shows it.
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { RealtimeEngine } from "./engine.js";

const LATENCY_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640,
];

const labelNames = ["model_name"] as const;

type ModelLabels = { model_name: string };

export interface EmulatorMetrics {
  registry: Registry;
  /** Requests handed to the engine, by tier (`emulator:requests_by_tier_total`). */
  requestsByTier: Counter<"model_name" | "tier">;
}

/** The metrics of an engine serving `modelName`, registered in a registry of their own. */
export function emulatorMetrics(engine: RealtimeEngine, modelName: string): EmulatorMetrics {
  const registry = new Registry();
  const labels = { model_name: modelName };
  registerGauges(registry, labels, engine);
  registerCounters(registry, labels, engine);
  // Not a vLLM metric: what the emulator made of each request's priority, so a test or an operator can
  // see the tier a request reached the engine with.
  const requestsByTier = new Counter({
    name: "emulator:requests_by_tier_total",
    help: "Requests handed to the engine, by the tier their priority (or the scheduling policy) gave them.",
    labelNames: ["model_name", "tier"] as const,
    registers: [registry],
  });
  registerLatencyHistograms(registry, labels, engine);
  return { registry, requestsByTier };
}

function gauge(registry: Registry, labels: ModelLabels, n: string, help: string, value: () => number): void {
  new Gauge({
    name: n,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.set(labels, value());
    },
  });
}

function counter(
  registry: Registry,
  labels: ModelLabels,
  n: string,
  help: string,
  value: () => number,
): void {
  new Counter({
    name: n,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(labels, value());
    },
  });
}

function registerGauges(registry: Registry, labels: ModelLabels, engine: RealtimeEngine): void {
  gauge(
    registry,
    labels,
    "vllm:num_requests_running",
    "Number of requests currently running on GPU.",
    () => engine.stats().running,
  );
  gauge(
    registry,
    labels,
    "vllm:num_requests_waiting",
    "Number of requests waiting to be processed.",
    () => engine.stats().waiting,
  );
  gauge(
    registry,
    labels,
    "vllm:kv_cache_usage_perc",
    "KV-cache usage. 1 means 100 percent usage.",
    () => engine.stats().kvUsage,
  );
  gauge(
    registry,
    labels,
    "vllm:gpu_cache_usage_perc",
    "GPU KV-cache usage (v0 name). 1 means 100 percent usage.",
    () => engine.stats().kvUsage,
  );
}

function registerCounters(registry: Registry, labels: ModelLabels, engine: RealtimeEngine): void {
  counter(
    registry,
    labels,
    "vllm:prompt_tokens_total",
    "Number of prefill tokens processed.",
    () => engine.promptTokensTotal,
  );
  counter(
    registry,
    labels,
    "vllm:generation_tokens_total",
    "Number of generation tokens processed.",
    () => engine.generationTokensTotal,
  );
  counter(
    registry,
    labels,
    "vllm:num_preemptions_total",
    "Cumulative number of preemption from the engine.",
    () => engine.stats().preemptions,
  );
  counter(
    registry,
    labels,
    "vllm:request_success_total",
    "Count of successfully processed requests.",
    () => engine.requestsFinished,
  );
}

/** TTFT, inter-token and end-to-end latency, observed by the engine's callbacks. */
function registerLatencyHistograms(registry: Registry, labels: ModelLabels, engine: RealtimeEngine): void {
  const h = (n: string, help: string) =>
    new Histogram({ name: n, help, labelNames, buckets: LATENCY_BUCKETS, registers: [registry] });
  const ttft = h("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.");
  const itl = h("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.");
  const e2e = h("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.");
  engine.onFirstToken = (s) => ttft.observe(labels, s);
  engine.onInterToken = (s) => itl.observe(labels, s);
  engine.onFinished = (s) => e2e.observe(labels, s);
}
