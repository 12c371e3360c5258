export {
  type ClusterSummary,
  DashboardActor,
  type DashboardOptions,
  type DashboardPoint,
  type DashboardState,
  type TierSummary,
} from "./observer.js";
