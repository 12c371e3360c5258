/**
 * @sageserve/protocol: the contract every actor shares — subjects, message schemas and their codec,
 * domain types and enumerations, typed errors, the SLO rule, the node lifecycle rule and the capacity
 * model. Everything here is plain data and pure functions; no I/O.
 */
export {
  CapacityModel,
  type CapacityOptions,
  type CapacityPoint,
  type CapacityTableData,
  DEFAULT_TARGET_UTILIZATION,
  type InstanceCapacity,
  type LengthMix,
  mixOf,
} from "./capacity.js";
export { MESSAGES } from "./catalog.js";
export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  decode,
  encode,
} from "./codec.js";
export { renderSubjectsDoc } from "./docs.js";
export {
  BatchResultKey,
  Count,
  DEFAULT_NIW_DEADLINE_MS,
  DEFAULT_SLO_TTFT_MS,
  EpochMs,
  Fraction,
  GpuType,
  Id,
  INSTANCE_STATES,
  InstanceState,
  instanceLoad,
  instanceLoadWith,
  type LoadSignals,
  ModelId,
  niwJobId,
  PAID_STATES,
  PLAN_STRATEGIES,
  type PlanStrategy,
  TIERS,
  Tier,
  TierCounts,
  TokenCount,
} from "./domain.js";
export {
  describeIssues,
  ERROR_CODES,
  type ErrorCode,
  err,
  errorMessage,
  isSageError,
  ok,
  type Result,
  SageError,
} from "./errors.js";
export {
  KeyCache,
  pairKey,
  tripleKey,
} from "./keys.js";
export {
  type LifecycleStep,
  type LifecycleView,
  type NodeAction,
  nodeCommandStep,
} from "./lifecycle.js";
export {
  type ErrorReply,
  ErrorReplySchema,
  envelope,
  type MessageDef,
  type MessageKind,
  type ParamsOf,
  type Payload,
  type PayloadIn,
  type ReplyIn,
  type ReplyOf,
  type Role,
  stampVersion,
  validatePayload,
  validateReply,
} from "./message.js";
export {
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
  streamParams,
  streamSubjectOf,
} from "./messages.js";
export {
  BATCH_MAX_ATTEMPTS,
  BATCH_RESULT_TTL_MS,
  BATCH_RESULTS_BUCKET,
  BatchLineResult,
  CapacityWanted,
  DemandReport,
  JobUpdate,
  NIW_STREAM,
  NiwJob,
  NODE_ACTIONS,
  NodeCommand,
  Plan,
  PlanRequest,
  RegionStatus,
  VmCommand,
} from "./messages-control.js";
export {
  countSlo,
  emptySloCounts,
  type FinishedRequest,
  judgedForSlo,
  metSlo,
  type PromptTiming,
  type PromptVerdict,
  promptVerdict,
  type SloCounts,
  type SloTtftMs,
  sloRates,
} from "./slo.js";
export {
  isValidSubject,
  subjectMatches,
} from "./subject.js";
