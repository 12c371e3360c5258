export { type EngineOptions, type EngineRequest, type EngineStats, RealtimeEngine } from "./engine.js";
export {
  chatPromptTokens,
  estimateTokens,
  priorityTier,
  SCHEDULING_POLICIES,
  type SchedulingPolicy,
} from "./openai.js";
export { type EmulatorHandle, type EmulatorOptions, startEmulator } from "./server.js";
export { emulatorPromptTiming } from "./timing.js";
