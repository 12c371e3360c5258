export * from "./agent.js";
export * from "./config.js";
export * from "./metrics.js";
export * from "./priority.js";
