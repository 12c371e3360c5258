export {
  type ClusterSpec,
  ClusterSpecSchema,
  clusterServices,
  DEFAULT_CLUSTER,
  loadClusterSpec,
  SERVICE_AUTH_ROLES,
  type ServiceDef,
  type ServiceRole,
} from "./cluster.js";
export { renderCompose } from "./compose.js";
export { type DemoOptions, runDemo } from "./demo.js";
export { LoadReplayer, type LoadStats } from "./load.js";
export { type NatsAuthCommandOptions, natsAuthCommand } from "./nats-auth.js";
export type { ServiceDeps } from "./service-context.js";
export { type RunningService, startService } from "./services.js";
export { VERSION } from "./version.js";
