export * from "./agent.js";
export * from "./niw-queue.js";
export * from "./policy.js";
