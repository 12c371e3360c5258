import { readFileSync } from "node:fs";
import { describeIssues, SageError } from "@sageserve/protocol";
import { z } from "zod";
import type { NodeAgentOptions } from "./agent.js";
import { ENGINE_KINDS } from "./metrics.js";

/**
 * Node agent configuration: a JSON file, with environment overrides
 * (SAGE_NODE_ID, SAGE_REGION, SAGE_ENGINE_URL, SAGE_MODEL). Defaults are documented in docs/deploy.md.
 */
export const NodeAgentConfigSchema = z
  .object({
    nodeId: z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, - and _ only"),
    region: z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, - and _ only"),
    gpuType: z.string().min(1),
    gpus: z.number().int().positive().max(64).default(8),
    engine: z
      .object({
        url: z.url(),
        kind: z.enum(ENGINE_KINDS).default("vllm"),
        model: z.string().min(1),
        pool: z.string().optional(),
        command: z.array(z.string()).min(1).optional(),
        kvCapacityTokens: z.number().int().positive().optional(),
        maxRunning: z.number().int().positive().max(65_536).optional(),
      })
      .strict(),
    heartbeatMs: z.number().int().positive().default(5_000),
    loadReportMs: z.number().int().positive().default(2_000),
    failAfterChecks: z.number().int().positive().default(2),
  })
  .strict();

export function loadNodeAgentConfig(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): NodeAgentOptions {
  let raw: Record<string, unknown> = {};
  if (path) {
    try {
      raw = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new SageError("CONFIG", `node agent config ${path}: ${(e as Error).message}`);
    }
  }
  const engine = { ...((raw.engine as Record<string, unknown> | undefined) ?? {}) };
  if (env.SAGE_ENGINE_URL) engine.url = env.SAGE_ENGINE_URL;
  if (env.SAGE_MODEL) engine.model = env.SAGE_MODEL;
  const merged = {
    ...raw,
    ...(env.SAGE_NODE_ID ? { nodeId: env.SAGE_NODE_ID } : {}),
    ...(env.SAGE_REGION ? { region: env.SAGE_REGION } : {}),
    engine,
  };
  const parsed = NodeAgentConfigSchema.safeParse(merged);
  if (!parsed.success)
    throw new SageError(
      "CONFIG",
      `node agent config${path ? ` ${path}` : ""}: ${describeIssues(parsed.error.issues)}`,
    );
  return parsed.data as NodeAgentOptions;
}
