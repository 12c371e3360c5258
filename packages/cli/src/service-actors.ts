// The actors of each kind of service (`ServiceRole`), built from the cluster description: one starter
// per role, looked up in `SERVICE_STARTERS`. Each opens its actors' connections through
// `ServiceConnections`; starting and stopping them is `startService`'s.
import { DashboardActor } from "@sageserve/dashboard";
import { blendedTokensPerSecond, builtinPerformanceModel, GPUS } from "@sageserve/engine";
import { emulatorPromptTiming } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import { PlannerActor, preloadSolvers } from "@sageserve/planner";
import { type CapacityModel, DEFAULT_SLO_TTFT_MS } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { emulatorCapacityModel } from "@sageserve/sim";
import { LocalProcessBackend, VmProviderActor } from "@sageserve/vm-provider";
import type { ClusterSpec, ServiceDef, ServiceRole } from "./cluster.js";
import type { ServiceActors, ServiceConnections } from "./service-context.js";

type ServiceStarter = (
  def: ServiceDef,
  spec: ClusterSpec,
  conns: ServiceConnections,
) => Promise<ServiceActors>;

const allModels = (spec: ClusterSpec): string[] => [...new Set(spec.regions.flatMap((r) => r.models))];

const regionIds = (spec: ClusterSpec): string[] => spec.regions.map((r) => r.id);

async function startDashboard(_def: ServiceDef, spec: ClusterSpec, conns: ServiceConnections) {
  const d = new DashboardActor(await conns.context("dashboard", "dashboard"), {
    port: spec.dashboard.port,
    host: spec.dashboard.host,
    // The engines are emulators at this speed: the dashboard judges SLO feasibility by their timing.
    promptTiming: emulatorPromptTiming(builtinPerformanceModel(), spec.engine.speedup),
  });
  return { actors: [d] };
}

/**
 * Tokens/s per model and GPU type the planner starts with, from the performance model at the engines'
 * speed-up and KV cache, until the capacity model measured on them is ready.
 */
function plannerCapacity(
  spec: ClusterSpec,
  models: string[],
  gpuTypes: string[],
): Record<string, Record<string, number>> {
  const perf = builtinPerformanceModel();
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
  return capacity;
}

/**
 * The one capacity model, measured on the engines this cluster runs (the emulators' speed-up, KV
 * cache and batch limit), so the plan and the region agents count instances as the engines behave. The
 * sweep takes 0.5–5 s of CPU: it runs once, a second after the first actor that wants it is up (the
 * planner's first plan is 2 minutes in), and is shared by every actor of the process. Until it is ready
 * a requested plan uses the fixed capacities of `plannerCapacity`, and the agents' demand floors are 0.
 */
let measured: { spec: ClusterSpec; model: Promise<CapacityModel> } | undefined;

function measuredCapacity(spec: ClusterSpec): Promise<CapacityModel> {
  if (measured?.spec !== spec) {
    const model = new Promise<CapacityModel>((resolve, reject) => {
      setTimeout(() => {
        try {
          resolve(
            emulatorCapacityModel({
              models: allModels(spec),
              gpus: [...new Set(spec.regions.flatMap((r) => r.gpuTypes))],
              speedup: spec.engine.speedup,
              kvTokens: spec.engine.kvTokens,
              maxRunning: spec.engine.maxRunning,
              maxInputTokens: spec.load.maxInputTokens,
            }),
          );
        } catch (e) {
          reject(e);
        }
      }, 1_000).unref();
    });
    measured = { spec, model };
  }
  return measured.model;
}

/** Hands the measured capacity model to `use` once it is ready; a failed sweep is logged, not thrown. */
function useCapacitySoon(
  spec: ClusterSpec,
  use: (cap: CapacityModel) => void,
  log: { error(o: object, msg: string): void },
  without: string,
): void {
  measuredCapacity(spec).then(use, (e) => log.error({ err: String(e) }, `capacity sweep failed: ${without}`));
}

async function startPlanner(_def: ServiceDef, spec: ClusterSpec, conns: ServiceConnections) {
  const regions = regionIds(spec);
  const models = allModels(spec);
  // Warm the solver up before the first plan (V8 optimises the wasm only as it runs; ~1.7 s once).
  await preloadSolvers({ warmUp: true });
  const gpuTypes = [...new Set(spec.regions.flatMap((r) => r.gpuTypes))];
  const capacity = plannerCapacity(spec, models, gpuTypes);
  const planner = new PlannerActor(await conns.context("planner", "planner"), {
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
  useCapacitySoon(
    spec,
    (cap) => planner.useCapacityModel(cap),
    planner.log,
    "planning with fixed capacities",
  );
  return { actors: [planner] };
}

async function startRouter(_def: ServiceDef, spec: ClusterSpec, conns: ServiceConnections) {
  const router = new RouterActor(await conns.context("router", "router"), {
    regions: regionIds(spec),
    models: allModels(spec),
    demandFromEngine: true,
  });
  return { actors: [router] };
}

/** `sageserve emulator ...` as the local VM provider starts an engine ({placeholders} filled per VM). */
function engineCommand(spec: ClusterSpec, sageserveArgv: string[]): string[] {
  return [
    ...sageserveArgv,
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
  ];
}

/** The region agent, and unless the region's VMs are provided elsewhere, a local VM provider. */
async function startRegion(
  def: ServiceDef,
  spec: ClusterSpec,
  conns: ServiceConnections,
): Promise<ServiceActors> {
  const r = spec.regions.find((x) => x.id === def.region)!;
  const ra = spec.regionAgent;
  const agent = new RegionAgentActor(await conns.context(`region-agent-${r.id}`, "region-agent"), {
    region: r.id,
    models: r.models,
    mode: ra.mode,
    gpuTypes: r.gpuTypes,
    reactive: { minInstances: ra.minInstances },
    scalingIntervalMs: ra.scalingIntervalMs,
    cooldowns: { bootMs: ra.cooldownMs, reclaimMs: ra.cooldownMs, swapMs: ra.cooldownMs },
    staleAfterMs: 5 * spec.engine.loadReportMs + 5_000,
    ...(ra.planStrategy !== "none" ? { planStrategy: ra.planStrategy } : {}),
    ...(ra.planExecution ? { planExecution: ra.planExecution } : {}),
    ...(ra.niw ? { niw: ra.niw } : {}),
  });
  // Under a plan the agent counts the instances measured demand needs with the planner's capacity model.
  if (ra.planStrategy !== "none")
    useCapacitySoon(spec, (cap) => agent.useCapacityModel(cap), agent.log, "demand floors off");
  if (r.vmProvider === "external") return { actors: [agent] };
  const backend = new LocalProcessBackend({
    connect: (name) => conns.connect(name, "node-agent"),
    clock: conns.clock,
    engineCommand: engineCommand(spec, conns.sageserveArgv),
    maxVms: r.maxVms,
    log: conns.logger(`vm-${r.id}`),
    loadReportMs: spec.engine.loadReportMs,
    heartbeatMs: spec.engine.heartbeatMs,
    kvCapacityTokens: spec.engine.kvTokens,
    maxRunning: spec.engine.maxRunning,
    enginePriority: true,
  });
  const provider = new VmProviderActor(
    await conns.context(`vm-provider-${r.id}`, "vm-provider"),
    r.id,
    backend,
  );
  return { actors: [provider, agent], cleanup: () => backend.releaseAll() };
}

async function startGateway(_def: ServiceDef, spec: ClusterSpec, conns: ServiceConnections) {
  const [home, ...more] = regionIds(spec);
  const gateway = new GatewayActor(await conns.context("gateway", "gateway"), {
    region: home!,
    regions: more,
    models: allModels(spec),
    port: spec.gateway.port,
    host: spec.gateway.host,
    apiKeys: spec.gateway.apiKeys,
  });
  return { actors: [gateway] };
}

/** How each kind of service makes its actors. */
export const SERVICE_STARTERS: Record<ServiceRole, ServiceStarter> = {
  dashboard: startDashboard,
  planner: startPlanner,
  router: startRouter,
  region: startRegion,
  gateway: startGateway,
};
