import { readFileSync } from "node:fs";
import { describeIssues, errorMessage, SageError, TIERS } from "@sageserve/protocol";
import { z } from "zod";
import { ENGINE_KINDS } from "./metrics.js";
import type { NodeAgentOptions } from "./options.js";
import { priorityProblem } from "./priority.js";

/** A priority value: any integer both engines accept (vLLM: int64, SGLang: int), kept within doubles. */
const PriorityValue = z
  .number()
  .int()
  .min(-(2 ** 31))
  .max(2 ** 31 - 1);

const EnginePriorityObject = z
  .object({
    field: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a JSON field name: letters, digits and _")
      .max(64)
      .optional(),
    values: z
      .object(
        Object.fromEntries(TIERS.map((t) => [t, PriorityValue])) as Record<
          (typeof TIERS)[number],
          typeof PriorityValue
        >,
      )
      .strict()
      .optional(),
    order: z.enum(["lower-first", "higher-first"]).optional(),
  })
  .strict();

/** `true`, `false` or an object; written by hand so an error names the part that is wrong (a union says "Invalid input"). */
const EnginePriorityConfig = z
  .unknown()
  .transform((v, ctx): boolean | z.output<typeof EnginePriorityObject> => {
    if (typeof v === "boolean") return v;
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      ctx.addIssue({ code: "custom", message: "true, false, or { field, values, order }" });
      return z.NEVER;
    }
    const r = EnginePriorityObject.safeParse(v);
    if (r.success) return r.data;
    for (const i of r.error.issues) ctx.addIssue({ code: "custom", message: i.message, path: i.path });
    return z.NEVER;
  });

/**
 * Node agent configuration: a JSON file, with environment overrides (SAGE_NODE_ID, SAGE_REGION,
 * SAGE_ENGINE_URL, SAGE_MODEL, SAGE_ENGINE_PRIORITY) and command-line ones (`--engine-priority`).
 * Defaults are documented in docs/deploy.md.
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
        priority: EnginePriorityConfig.optional(),
      })
      .strict()
      .superRefine((e, ctx) => {
        const problem = priorityProblem(e.kind, e.priority);
        if (problem) ctx.addIssue({ code: "custom", path: ["priority"], message: problem });
      }),
    heartbeatMs: z.number().int().positive().default(5_000),
    loadReportMs: z.number().int().positive().default(2_000),
    failAfterChecks: z.number().int().positive().default(2),
  })
  .strict();

/** Settings given on the command line; they win over the environment and the file. */
export interface NodeAgentOverrides {
  /** `--engine-priority on|off`. */
  enginePriority?: string;
}

/**
 * `on` keeps a mapping the file gives (or takes the kind's), `off` turns priority off; anything else is
 * left for the schema to reject under `engine.priority`.
 */
function priorityOverride(current: unknown, v: string): unknown {
  if (v === "off") return false;
  if (v === "on") return typeof current === "object" && current !== null ? current : true;
  return v;
}

export function loadNodeAgentConfig(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  overrides: NodeAgentOverrides = {},
): NodeAgentOptions {
  let raw: Record<string, unknown> = {};
  if (path) {
    try {
      raw = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new SageError("CONFIG", `node agent config ${path}: ${errorMessage(e)}`);
    }
  }
  const engine = { ...((raw.engine as Record<string, unknown> | undefined) ?? {}) };
  if (env.SAGE_ENGINE_URL) engine.url = env.SAGE_ENGINE_URL;
  if (env.SAGE_MODEL) engine.model = env.SAGE_MODEL;
  for (const v of [env.SAGE_ENGINE_PRIORITY, overrides.enginePriority])
    if (v) engine.priority = priorityOverride(engine.priority, v);
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
