export * from "./agent.js";
export * from "./niw-queue.js";
export * from "./plan-policy.js";
export * from "./policy.js";
