export * from "./cluster.js";
export * from "./compose.js";
export { type DemoOptions, runDemo } from "./demo.js";
export { LoadReplayer, type LoadStats } from "./load.js";
export * from "./nats-auth.js";
export { VERSION } from "./version.js";
