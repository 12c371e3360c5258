export * from "./engine.js";
export * from "./openai.js";
export * from "./server.js";
export * from "./timing.js";
