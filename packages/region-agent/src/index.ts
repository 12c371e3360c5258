export type { ActionCounts } from "./actions.js";
export { RegionAgentActor } from "./agent.js";
export type { BootInFlight } from "./instance-view.js";
export { BACKLOG_BOUNDS_MINUTES } from "./niw-feed.js";
export type { RegionAgentOptions } from "./options.js";
export { DEFAULT_PLAN_EXECUTION, type PlanExecutionConfig } from "./plan-policy.js";
export {
  DEFAULT_NIW_RELEASE,
  DEFAULT_REACTIVE,
  type NiwReleaseConfig,
  type ReactiveConfig,
} from "./policy.js";
