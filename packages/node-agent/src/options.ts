/**
 * What a node agent is told: its node, its engine, and its timings, with the defaults of the optional
 * numbers applied in one place (`resolveTimings`). Apart from the actor so the configuration loader
 * (config.ts) and the actor share one definition.
 */
import type { EngineKind } from "./metrics.js";
import type { EnginePrioritySetting } from "./priority.js";

export interface NodeAgentOptions {
  nodeId: string;
  region: string;
  gpuType: string;
  gpus?: number;
  engine: {
    /** Base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000 */
    url: string;
    kind: EngineKind;
    /** Model the engine serves (its `model` name). */
    model: string;
    pool?: string;
    /**
     * Command that starts the engine (argv; `{model}`, `{port}`, `{gpu}` and `{parentPid}` are substituted). When set, the agent
     * runs the engine itself and swaps models by restarting it; otherwise it only watches an engine
     * someone else runs.
     */
    command?: string[];
    /** KV-cache capacity in tokens, reported with the load (weights utilisation across GPU types). */
    kvCapacityTokens?: number;
    /**
     * Most sequences the engine runs at once (its --max-num-seqs; vLLM's default is 256), reported with
     * the load so routing and scaling see an engine whose slots are full although its KV cache is not.
     */
    maxRunning?: number;
    /**
     * Send each request's tier as the engine's scheduling priority (`ENGINE_PRIORITY` in priority.ts):
     * `true` = the kind's field and values, an object replaces parts of them. Off by default: the engine
     * must be started with priority scheduling (vLLM `--scheduling-policy priority`, SGLang
     * `--enable-priority-scheduling`), and TGI and llama.cpp have none (a CONFIG error).
     */
    priority?: EnginePrioritySetting;
  };
  heartbeatMs?: number;
  loadReportMs?: number;
  /** Consecutive failed health checks before the instance is reported failed. */
  failAfterChecks?: number;
  /** On shutdown, how long to wait for in-flight streams before stopping anyway. */
  drainTimeoutMs?: number;
}

/** NodeAgentOptions' optional numbers with their defaults applied (the agent resolves them once, at construction). */
export interface NodeAgentTimings {
  gpus: number;
  heartbeatMs: number;
  loadReportMs: number;
  failAfterChecks: number;
  drainTimeoutMs: number;
}

export function resolveTimings(opts: NodeAgentOptions): NodeAgentTimings {
  return {
    gpus: opts.gpus ?? 8,
    heartbeatMs: opts.heartbeatMs ?? 5_000,
    loadReportMs: opts.loadReportMs ?? 2_000,
    failAfterChecks: opts.failAfterChecks ?? 2,
    drainTimeoutMs: opts.drainTimeoutMs ?? 30_000,
  };
}
