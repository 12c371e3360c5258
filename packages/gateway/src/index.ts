export type { ApiKey } from "./auth.js";
export { GatewayActor, type GatewayOptions } from "./gateway.js";
export { depthExceeds, MAX_BODY_DEPTH } from "./validate.js";
