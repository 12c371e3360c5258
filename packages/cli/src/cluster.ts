import { readFileSync } from "node:fs";
import { GPUS, MODELS } from "@sageserve/engine";
import type { AuthRole } from "@sageserve/nats";
import { describeIssues, errorMessage, SageError } from "@sageserve/protocol";
import { NiwSettingsSchema, PlanExecutionSchema } from "@sageserve/sim";
import { z } from "zod";

/**
 * One description of a SageServe cluster. `sageserve up` starts it in one process; the compose
 * file (`scripts/gen-compose.ts` → docker-compose.yml) runs each of its services as a container
 * with `sageserve actor <service>`; a test keeps the two in step.
 */
export const ClusterSpecSchema = z
  .object({
    name: z.string().min(1).default("sageserve-local"),
    regions: z
      .array(
        z.object({
          id: z.string().regex(/^[A-Za-z0-9_-]+$/, "letters, digits, '-' and '_' only"),
          models: z.array(z.string().refine((m) => m in MODELS, { message: "unknown model" })).min(1),
          gpuTypes: z.array(z.string().refine((g) => g in GPUS, { message: "unknown GPU type" })).min(1),
          /** Most "VMs" (node agent + engine process) the local VM provider starts in the region. */
          maxVms: z.number().int().min(1).max(64),
          /**
           * "local": the region service runs a VM provider whose "VMs" are local processes; "external":
           * it runs the region agent alone, and a provider deployed elsewhere (a cloud or Kubernetes
           * hook, docs/deploy.md) answers its VmCommands, its VMs outliving a region agent restart.
           */
          vmProvider: z.enum(["local", "external"]).default("local"),
        }),
      )
      .min(1),
    gateway: z.object({
      port: z.number().int().min(0).max(65535),
      host: z.string().default("127.0.0.1"),
      /**
       * API key → its name, default tier and optional rate limit (requests/s, burst); empty = no key
       * needed (a laptop). Strict: an unknown field is named, not dropped (a misspelt or unsupported rate
       * limit used to vanish and leave the key unlimited).
       */
      apiKeys: z
        .record(
          z.string().min(8),
          z
            .object({
              name: z.string(),
              tier: z.enum(["fast", "normal", "batch"]).optional(),
              requestsPerSecond: z.number().positive().optional(),
              burst: z.number().min(1).optional(),
              /** Quotas shared by every gateway replica: requests and tokens per sliding minute. */
              requestsPerMinute: z.number().int().positive().optional(),
              tokensPerMinute: z.number().int().positive().optional(),
            })
            .strict(),
        )
        .default({}),
    }),
    dashboard: z.object({
      port: z.number().int().min(0).max(65535),
      host: z.string().default("127.0.0.1"),
    }),
    planner: z.object({
      /** cron (UTC, seconds optional). */
      schedule: z.string().min(1),
      strategy: z.enum(["lt-i", "lt-u", "lt-ua"]),
    }),
    regionAgent: z.object({
      mode: z.enum(["unified", "siloed"]),
      /** Follow the planner's plans ("none" = purely reactive). */
      planStrategy: z.enum(["none", "lt-i", "lt-u", "lt-ua"]),
      minInstances: z.number().int().min(0),
      scalingIntervalMs: z.number().int().positive(),
      /** Cool-downs after a scale-up: about the time a local "VM" takes to arrive. */
      cooldownMs: z.number().int().nonnegative(),
      /** How LT-* carry out a plan (as the simulator's `regionAgent.planExecution`; docs/planner.md). */
      planExecution: PlanExecutionSchema.optional(),
      /** Batch release thresholds (as the simulator's `regionAgent.niw`). */
      niw: NiwSettingsSchema.optional(),
    }),
    engine: z.object({
      /** Emulated engines run this many times faster than the measured hardware. */
      speedup: z.number().positive(),
      /** KV-cache tokens per engine: small, so a few requests per second make it scale. */
      kvTokens: z.number().int().positive(),
      /** Most sequences per engine (--max-num-seqs), reported with the load. */
      maxRunning: z.number().int().positive().default(256),
      loadReportMs: z.number().int().positive(),
      heartbeatMs: z.number().int().positive(),
    }),
    /** The built-in workload `up` replays through the gateway. */
    load: z.object({
      ratePerSecond: z.number().nonnegative(),
      burstCv: z.number().min(1),
      maxInputTokens: z.number().int().positive(),
      maxOutputTokens: z.number().int().positive(),
      seed: z.number().int().nonnegative(),
    }),
  })
  .strict();

export type ClusterSpec = z.output<typeof ClusterSpecSchema>;

const LAPTOP_MODELS = ["llama3.1-8b", "llama3.2-3b"];

export const DEFAULT_CLUSTER: ClusterSpec = ClusterSpecSchema.parse({
  regions: ["eastus", "centralus", "westus"].map((id) => ({
    id,
    models: LAPTOP_MODELS,
    gpuTypes: ["h100"],
    maxVms: 4,
  })),
  gateway: { port: 8080, apiKeys: {} },
  dashboard: { port: 8090 },
  planner: { schedule: "*/5 * * * *", strategy: "lt-ua" },
  regionAgent: {
    mode: "unified",
    planStrategy: "lt-ua",
    minInstances: 1,
    scalingIntervalMs: 2_000,
    cooldownMs: 6_000,
  },
  engine: { speedup: 0.5, kvTokens: 8_000, maxRunning: 256, loadReportMs: 1_000, heartbeatMs: 2_000 },
  load: { ratePerSecond: 4, burstCv: 1.5, maxInputTokens: 2_048, maxOutputTokens: 200, seed: 1 },
});

/**
 * A cluster description from a JSON file (every bad field named; top-level sections it leaves out are
 * the built-in ones), else the built-in one.
 */
export function loadClusterSpec(file?: string): ClusterSpec {
  if (!file) return DEFAULT_CLUSTER;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new SageError("CONFIG", `cluster file ${file}: ${errorMessage(e)}`);
  }
  // Sections the file leaves out keep the built-in ones: `actor gateway --cluster gw.json` needs a
  // gateway section, not the whole cluster.
  const filled =
    typeof raw === "object" && raw !== null && !Array.isArray(raw) ? { ...DEFAULT_CLUSTER, ...raw } : raw;
  const parsed = ClusterSpecSchema.safeParse(filled);
  if (!parsed.success)
    throw new SageError("CONFIG", `cluster file ${file}: ${describeIssues(parsed.error.issues)}`);
  return parsed.data;
}

export type ServiceRole = "planner" | "router" | "region" | "gateway" | "dashboard";

export interface ServiceDef {
  /** Service name: `sageserve actor <name>`, and the compose service. */
  name: string;
  role: ServiceRole;
  region?: string;
  /** TCP ports it listens on (HTTP). */
  ports: number[];
  description: string;
}

/** The NATS roles (credentials) each service's actors connect as. */
export const SERVICE_AUTH_ROLES: Record<ServiceRole, AuthRole[]> = {
  dashboard: ["dashboard"],
  planner: ["planner"],
  router: ["router"],
  // The region agent, its VM provider, and the node agents of the "VMs" it starts locally.
  region: ["region-agent", "vm-provider", "node-agent"],
  gateway: ["gateway"],
};

/** The services of a cluster, in start order. */
export function clusterServices(spec: ClusterSpec): ServiceDef[] {
  return [
    {
      name: "dashboard",
      role: "dashboard",
      ports: [spec.dashboard.port],
      description: "live dashboard and cluster summary",
    },
    { name: "planner", role: "planner", ports: [], description: "forecast + ILP capacity plan" },
    { name: "router", role: "router", ports: [], description: "per-request routing" },
    ...spec.regions.map(
      (r): ServiceDef => ({
        name: `region-${r.id}`,
        role: "region",
        region: r.id,
        ports: [],
        description: `region agent and local VM provider for ${r.id} (node agents + engine emulators)`,
      }),
    ),
    {
      name: "gateway",
      role: "gateway",
      ports: [spec.gateway.port],
      description: "OpenAI-compatible front door",
    },
  ];
}
