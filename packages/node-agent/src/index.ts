export { NodeAgentActor } from "./agent.js";
export { loadNodeAgentConfig, type NodeAgentOverrides } from "./config.js";
export { ENGINE_KINDS, type EngineKind } from "./metrics.js";
export type { NodeAgentOptions } from "./options.js";
export type { EnginePrioritySetting } from "./priority.js";
