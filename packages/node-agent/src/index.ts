export * from "./agent.js";
export * from "./metrics.js";
