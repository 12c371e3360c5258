/**
 * What the simulated node agents and VM provider say, built from a VM's state: load reports, request
 * outcomes, re-routes, lifecycle transitions, command replies and slow-request records. Pure builders,
 * apart from `SimFleet` so the actor reads as event flow; each returns one fresh object of a fixed shape
 * (no spreads on the per-request paths).
 */
import type { Completion, Instance, InstanceRequest, PerformanceModel } from "@sageserve/engine";
import type {
  InstanceState,
  InstanceTransition,
  LoadReport,
  Payload,
  PayloadIn,
  RequestDone,
  RouteRequest,
} from "@sageserve/protocol";
import type { SlowRequest } from "./fleet-options.js";
import type { Vm } from "./vm.js";

/** The reply to a refused NodeCommand or VmCommand. */
export function refused(commandId: string, message: string) {
  return { commandId, accepted: false, message };
}

/** The reply to an accepted NodeCommand: the state the node is in now, and when it will be serving. */
export function acceptedNodeCommand(commandId: string, state: InstanceState, etaMs?: number) {
  return {
    commandId,
    accepted: true,
    state,
    ...(etaMs === undefined ? {} : { etaMs }),
  };
}

/** `req` sent back to the routers of `region`, on its `attempt`-th re-route. */
export function rerouteRequest(
  req: InstanceRequest,
  model: string,
  region: string,
  attempt: number,
): PayloadIn<typeof RouteRequest> {
  return {
    requestId: req.id,
    model,
    tier: req.tier,
    originRegion: region,
    inputTokens: req.inputTokens,
    maxOutputTokens: req.outputTokens,
    arrivalMs: req.arrivalMs,
    ...(req.deadlineMs === undefined ? {} : { deadlineMs: req.deadlineMs }),
    stream: false,
    attempt,
  };
}

/** `req` given up on at `nowMs` (no instance could take it). */
export function failedDone(
  req: InstanceRequest,
  model: string,
  region: string,
  instanceId: string,
  nowMs: number,
): Payload<typeof RequestDone> {
  return {
    requestId: req.id,
    model,
    tier: req.tier,
    region,
    instanceId,
    outcome: "failed",
    inputTokens: req.inputTokens,
    outputTokens: 0,
    arrivalMs: req.arrivalMs,
    ttftMs: 0,
    tbtMs: 0,
    e2eMs: nowMs - req.arrivalMs,
  };
}

/** Completion `c` on `vm`, whose first token came at `firstMs`. */
export function completedDone(vm: Vm, c: Completion, firstMs: number): Payload<typeof RequestDone> {
  const r = c.req;
  const done: Payload<typeof RequestDone> = {
    requestId: r.id,
    model: vm.model,
    tier: r.tier,
    region: vm.region,
    instanceId: vm.instanceId,
    outcome: "ok",
    inputTokens: r.inputTokens,
    outputTokens: r.outputTokens,
    arrivalMs: r.arrivalMs,
    ttftMs: firstMs - r.arrivalMs,
    tbtMs: r.outputTokens > 1 ? (c.doneMs - firstMs) / (r.outputTokens - 1) : 0,
    e2eMs: c.doneMs - r.arrivalMs,
  };
  // Set only when there is one (no spread of a temporary object per request).
  if (r.deadlineMs !== undefined) done.deadlineMs = r.deadlineMs;
  return done;
}

/** Where the time of `r` (served on `vm`, first token at `firstMs`) went. */
export function slowRequestOf(
  vm: Vm,
  r: InstanceRequest,
  firstMs: number,
  perf: PerformanceModel,
): SlowRequest {
  return {
    id: r.id,
    tier: r.tier,
    model: vm.model,
    region: vm.region,
    gpu: vm.gpu,
    instanceId: vm.instanceId,
    inputTokens: r.inputTokens,
    outputTokens: r.outputTokens,
    arrivalMs: r.arrivalMs,
    routerMs: (r.receivedMs ?? r.arrivalMs) - r.arrivalMs,
    queueMs: (r.admittedMs ?? firstMs) - (r.receivedMs ?? r.arrivalMs),
    prefillMs: firstMs - (r.admittedMs ?? firstMs),
    ttftMs: firstMs - r.arrivalMs,
    preemptions: r.preemptions ?? 0,
    idlePrefillMs: perf.prefillMs(vm.model, vm.gpu, r.inputTokens),
  };
}

/** `vm` went from `from` to its current state at `nowMs`. */
export function transitionOf(
  vm: Vm,
  from: InstanceState,
  reason: string,
  nowMs: number,
): PayloadIn<typeof InstanceTransition> {
  return {
    instanceId: vm.instanceId,
    nodeId: vm.nodeId,
    region: vm.region,
    model: vm.model,
    from,
    to: vm.state,
    reason,
    atMs: nowMs,
  };
}

/**
 * `vm`'s load report at `nowMs`. `inst` is its engine (absent while booting, loading or stopped);
 * `iwCapacityRps`, when given, is sent with the VM's smoothed interactive arrival rate.
 */
export function loadReportOf(
  vm: Vm,
  inst: Instance | undefined,
  nowMs: number,
  perf: PerformanceModel,
  maxBatch: number,
  iwCapacityRps: number | undefined,
): Payload<typeof LoadReport> {
  const blocks = inst ? inst.kvBlocksUsed : 0;
  const util = inst ? Math.min(1, blocks / Math.max(1, inst.numBlocks)) : 0;
  const r: Payload<typeof LoadReport> = {
    instanceId: vm.instanceId,
    nodeId: vm.nodeId,
    region: vm.region,
    model: vm.model,
    gpuType: vm.gpu,
    state: vm.state,
    kvUtilization: util,
    memoryUtilization: util,
    running: inst?.batchSize ?? 0,
    waiting: inst?.waitingCount ?? 0,
    // KV the running requests hold + prompt and output of those queued: the router subtracts the
    // held part to rank instances by their queue (router policy `queuedTokens`).
    outstandingTokens: inst ? blocks * inst.blockSize + inst.waitingTokens : 0,
    tokensPerSecond: 0,
    kvCapacityTokens: inst?.kvCapacity ?? perf.kvTokenCapacity(vm.model, vm.gpu),
    maxRunning: inst?.maxBatch ?? maxBatch,
    atMs: nowMs,
  };
  if (inst?.hasFirstTokenWaits) {
    const fast = inst.oldestWaitMs("iw-fast", nowMs);
    const normal = inst.oldestWaitMs("iw-normal", nowMs);
    if (fast) r.iwFastWaitMs = fast;
    if (normal) r.iwNormalWaitMs = normal;
  }
  if (iwCapacityRps) {
    r.iwRps = vm.iwRps;
    r.iwCapacityRps = iwCapacityRps;
  }
  if (vm.pool !== undefined) r.pool = vm.pool;
  return r;
}
