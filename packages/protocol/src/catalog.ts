import type { MessageDef } from "./message.js";
import {
  Heartbeat,
  InferenceChunk,
  InferenceRequest,
  InstanceTransition,
  LoadReport,
  QuotaUsage,
  RequestCancel,
  RequestDone,
  RouteRequest,
  RunCheck,
} from "./messages.js";
import {
  CapacityWanted,
  DemandReport,
  JobUpdate,
  NiwJob,
  NodeCommand,
  Plan,
  PlanRequest,
  RegionStatus,
  VmCommand,
} from "./messages-control.js";

/** Every declared message, in documentation order. */
export const MESSAGES: readonly MessageDef[] = [
  RouteRequest,
  InferenceRequest,
  RunCheck,
  InferenceChunk,
  RequestCancel,
  QuotaUsage,
  RequestDone,
  LoadReport,
  Heartbeat,
  InstanceTransition,
  NodeCommand,
  VmCommand,
  Plan,
  PlanRequest,
  DemandReport,
  CapacityWanted,
  RegionStatus,
  NiwJob,
  JobUpdate,
] as MessageDef[];

export function messageByName(name: string): MessageDef | undefined {
  return MESSAGES.find((m) => m.name === name);
}
