export type { RoutableInstance } from "./instances.js";
export type { RouteShare } from "./plan-routing.js";
export {
  chooseInstance,
  chooseRegion,
  DEFAULT_ROUTER_CONFIG,
  endpointUtilization,
  type InstanceView,
  type RouterConfig,
} from "./policy.js";
export { RouterActor, type RouterOptions } from "./router.js";
