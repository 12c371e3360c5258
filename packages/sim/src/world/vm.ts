/**
 * One simulated VM: its lifecycle state, the engine instance it holds, and the bookkeeping of its
 * wake-ups and load reports. A plain record (one shape, every field set at creation) that `SimFleet`
 * mutates on its hot paths.
 */
import { gpuSpec, type Instance } from "@sageserve/engine";
import type { InstanceState } from "@sageserve/protocol";
import type { LedgerKey } from "./ledger.js";

export interface Vm {
  nodeId: string;
  instanceId: string;
  region: string;
  gpu: string;
  gpus: number;
  state: InstanceState;
  model: string;
  pool: string | undefined;
  instance: Instance | undefined;
  sinceMs: number;
  wakeAtMs: number;
  wakeVersion: number;
  /** What a draining VM becomes when its last request finishes. */
  afterDrain: InstanceState | undefined;
  /** Interactive arrivals since the last load report, and their smoothed rate (req/s). */
  iwArrivals: number;
  iwRps: number;
  rateAtMs: number;
  /** When the last load report went out, and the state it reported if the instance was idle then. */
  reportedAtMs: number;
  idleReport: InstanceState | undefined;
}

/** A new VM `nodeId`, in `state` since `nowMs`, without an engine instance yet. */
export function createVm(
  nodeId: string,
  region: string,
  gpu: string,
  model: string,
  pool: string | undefined,
  state: InstanceState,
  nowMs: number,
): Vm {
  return {
    nodeId,
    instanceId: `${nodeId}-i0`,
    region,
    gpu,
    gpus: gpuSpec(gpu).gpusPerVm,
    state,
    model,
    pool,
    instance: undefined,
    sinceMs: nowMs,
    wakeAtMs: Number.POSITIVE_INFINITY,
    wakeVersion: 0,
    afterDrain: undefined,
    iwArrivals: 0,
    iwRps: 0,
    rateAtMs: nowMs,
    reportedAtMs: Number.NEGATIVE_INFINITY,
    idleReport: undefined,
  };
}

/** The ledger entry `vm`'s current interval is booked under. */
export function ledgerKeyOf(vm: Vm): LedgerKey {
  return { state: vm.state, model: vm.model, region: vm.region, gpu: vm.gpu, pool: vm.pool ?? "" };
}
