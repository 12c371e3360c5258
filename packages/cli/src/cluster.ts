import { readFileSync } from "node:fs";
import { DashboardActor } from "@sageserve/dashboard";
import { blendedTokensPerSecond, builtinPerformanceModel, GPUS, MODELS } from "@sageserve/engine";
import { emulatorPromptTiming } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import { PlannerActor, preloadSolvers } from "@sageserve/planner";
import { DEFAULT_SLO_TTFT_MS, describeIssues, SageError } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import {
  type Actor,
  type AuthRole,
  type Bus,
  type Clock,
  createLogger,
  NatsBus,
  type NatsClientAuth,
} from "@sageserve/runtime";
import { emulatorCapacityModel } from "@sageserve/sim";
import { LocalProcessBackend, VmProviderActor } from "@sageserve/vm-provider";
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
    throw new SageError("CONFIG", `cluster file ${file}: ${(e as Error).message}`);
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

export interface ServiceDeps {
  natsUrl: string;
  clock: Clock;
  /** argv that runs `sageserve` (for the engine processes the VM provider starts). */
  sageserveArgv: string[];
  logLevel?: string;
  /** Credentials per role (NKey seed, TLS); none = connect without (a NATS without auth). */
  natsAuth?: (role: AuthRole) => NatsClientAuth;
}

export interface RunningService {
  def: ServiceDef;
  actors: Actor[];
  /** URL of its HTTP server, when it has one. */
  url?: string;
  stop(): Promise<void>;
}

const allModels = (spec: ClusterSpec): string[] => [...new Set(spec.regions.flatMap((r) => r.models))];

/** Start one service of the cluster; every actor gets its own NATS connection. */
export async function startService(
  def: ServiceDef,
  spec: ClusterSpec,
  deps: ServiceDeps,
): Promise<RunningService> {
  const buses: Bus[] = [];
  const log = (name: string) => createLogger({ name, level: deps.logLevel ?? "warn" });
  // Every connection authenticates as its actor's role: a region service holds three (region agent,
  // VM provider, and node agent for the nodes it starts), each with only its own permissions.
  const connect = async (name: string, role: AuthRole): Promise<Bus> => {
    const bus = await NatsBus.connect({
      servers: deps.natsUrl,
      name: `sageserve-${name}`,
      ...(deps.natsAuth?.(role) ?? {}),
    });
    buses.push(bus);
    return bus;
  };
  const ctx = async (name: string, role: AuthRole) => ({
    bus: await connect(name, role),
    clock: deps.clock,
    log: log(name),
  });
  const actors: Actor[] = [];
  let cleanup: (() => Promise<void>) | undefined;
  const regions = spec.regions.map((r) => r.id);
  const models = allModels(spec);
  switch (def.role) {
    case "dashboard": {
      const d = new DashboardActor(await ctx("dashboard", "dashboard"), {
        port: spec.dashboard.port,
        host: spec.dashboard.host,
        // The engines are emulators at this speed: the dashboard judges SLO feasibility by their timing.
        promptTiming: emulatorPromptTiming(builtinPerformanceModel(), spec.engine.speedup),
      });
      actors.push(d);
      break;
    }
    case "planner": {
      // Warm the solver up before the first plan (V8 optimises the wasm only as it runs; ~1.7 s once).
      await preloadSolvers({ warmUp: true });
      const perf = builtinPerformanceModel();
      const gpuTypes = [...new Set(spec.regions.flatMap((r) => r.gpuTypes))];
      // Demand is prompt + output tokens/s; chat-like traffic is ~15 % output tokens.
      const outShare = 0.15;
      const capacity: Record<string, Record<string, number>> = {};
      for (const m of models) {
        capacity[m] = {};
        // Only GPU types that prefill a long (4,096-token) prompt within the IW-fast TTFT target get
        // capacity (PerformanceModel.latencyEligible): the cheapest throughput is not always fast enough.
        for (const g of perf.latencyEligible(m, gpuTypes, 4_096, DEFAULT_SLO_TTFT_MS["iw-fast"])) {
          const c = perf.capacity(m, g, { meanContextTokens: 1_024 });
          // The engine's KV cap (laptop) bounds the batch more than the GPU's memory does.
          const kvBound = Math.min(1, spec.engine.kvTokens / c.kvTokenCapacity);
          const decode = c.decodeTokensPerSecond * Math.max(kvBound, 1 / c.safeBatch);
          const blended = blendedTokensPerSecond({ ...c, decodeTokensPerSecond: decode }, outShare);
          capacity[m][g] = Math.max(1, Math.round(spec.engine.speedup * blended));
        }
      }
      const planner = new PlannerActor(await ctx("planner", "planner"), {
        models,
        regions,
        capacity,
        gpuTypes: gpuTypes.map((g) => ({
          id: g,
          pricePerHour: GPUS[g]!.vmPricePerHour,
          gpusPerVm: GPUS[g]!.gpusPerVm,
        })),
        supply: Object.fromEntries(
          spec.regions.map((r) => [r.id, Object.fromEntries(r.gpuTypes.map((g) => [g, r.maxVms]))]),
        ),
        routes: Object.fromEntries(regions.map((r) => [r, regions.filter((q) => q !== r)])),
        schedule: spec.planner.schedule,
        strategy: spec.planner.strategy,
        // The rest of the ILP settings take their defaults (headroom 0 with the capacity model).
        config: { minInstances: spec.regionAgent.minInstances },
      });
      actors.push(planner);
      // The one capacity model, measured on the engines this cluster runs (the emulators' speed-up, KV
      // cache and batch limit), so the plan counts instances as the engines behave. The sweep takes
      // 0.5–5 s of CPU: it runs once the planner is up (its first plan is 2 minutes in), and until then a
      // requested plan uses the fixed capacities above.
      setTimeout(() => {
        try {
          planner.useCapacityModel(
            emulatorCapacityModel({
              models,
              gpus: gpuTypes,
              speedup: spec.engine.speedup,
              kvTokens: spec.engine.kvTokens,
              maxRunning: spec.engine.maxRunning,
              maxInputTokens: spec.load.maxInputTokens,
            }),
          );
        } catch (e) {
          planner.log.error({ err: String(e) }, "capacity sweep failed: planning with fixed capacities");
        }
      }, 1_000).unref();
      break;
    }
    case "router":
      actors.push(
        new RouterActor(await ctx("router", "router"), { regions, models, demandFromEngine: true }),
      );
      break;
    case "region": {
      const r = spec.regions.find((x) => x.id === def.region)!;
      const ra = spec.regionAgent;
      const agent = new RegionAgentActor(await ctx(`region-agent-${r.id}`, "region-agent"), {
        region: r.id,
        models: r.models,
        mode: ra.mode,
        gpuTypes: r.gpuTypes,
        reactive: { minInstances: ra.minInstances },
        scalingIntervalMs: ra.scalingIntervalMs,
        cooldowns: { bootMs: ra.cooldownMs, reclaimMs: ra.cooldownMs, swapMs: ra.cooldownMs },
        staleAfterMs: 5 * spec.engine.loadReportMs + 5_000,
        ...(ra.planStrategy !== "none" ? { planStrategy: ra.planStrategy } : {}),
      });
      if (r.vmProvider === "external") {
        actors.push(agent);
        break;
      }
      const backend = new LocalProcessBackend({
        connect: (name) => connect(name, "node-agent"),
        clock: deps.clock,
        engineCommand: [
          ...deps.sageserveArgv,
          "emulator",
          "--model",
          "{model}",
          "--gpu",
          "{gpu}",
          "--port",
          "{port}",
          "--speedup",
          String(spec.engine.speedup),
          "--kv-tokens",
          String(spec.engine.kvTokens),
          "--max-num-seqs",
          String(spec.engine.maxRunning),
          // Started as vLLM would be for SageServe: the node agents send each request's tier as its priority.
          "--scheduling-policy",
          "priority",
          "--parent-pid",
          "{parentPid}",
        ],
        maxVms: r.maxVms,
        log: log(`vm-${r.id}`),
        loadReportMs: spec.engine.loadReportMs,
        heartbeatMs: spec.engine.heartbeatMs,
        kvCapacityTokens: spec.engine.kvTokens,
        maxRunning: spec.engine.maxRunning,
        enginePriority: true,
      });
      const provider = new VmProviderActor(await ctx(`vm-provider-${r.id}`, "vm-provider"), r.id, backend);
      actors.push(provider, agent);
      cleanup = () => backend.releaseAll();
      break;
    }
    case "gateway": {
      const [home, ...more] = regions;
      actors.push(
        new GatewayActor(await ctx("gateway", "gateway"), {
          region: home!,
          regions: more,
          models,
          port: spec.gateway.port,
          host: spec.gateway.host,
          apiKeys: spec.gateway.apiKeys,
        }),
      );
      break;
    }
  }
  try {
    for (const a of actors) await a.start();
  } catch (e) {
    for (const a of actors) await a.stop().catch(() => {});
    await cleanup?.();
    for (const b of buses) await b.close().catch(() => {});
    throw e;
  }
  const http = actors.find((a) => a instanceof GatewayActor || a instanceof DashboardActor) as
    | GatewayActor
    | DashboardActor
    | undefined;
  const url = http?.url;
  return {
    def,
    actors,
    ...(url ? { url } : {}),
    async stop() {
      // Agents first (no new scaling), then the VMs they command, then the connections.
      for (const a of [...actors].reverse()) await a.stop().catch(() => {});
      await cleanup?.();
      for (const b of buses) await b.close().catch(() => {});
    },
  };
}
