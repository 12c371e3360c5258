/**
 * @sageserve/nats: the live adapter of the runtime's Bus port — NatsBus (core pub/sub, request/reply,
 * micro services, JetStream work queues, KV and object store), per-role credentials and permissions,
 * and spawning local nats-servers and clusters. The actor kernel (@sageserve/runtime) knows nothing of
 * it: actors see only the Bus port; the CLI wires this adapter in.
 */
export {
  generateNatsAuth,
  type NatsAuthFiles,
  type NatsAuthOptions,
  type ScopedCredential,
} from "./nats-auth.js";
export { NatsBus } from "./nats-bus.js";
export { type NatsClusterHandle, type NatsClusterOptions, startNatsCluster } from "./nats-cluster.js";
export {
  type NatsBusOptions,
  type NatsClientAuth,
  type NatsTlsOptions,
  natsAuthFromEnv,
} from "./nats-options.js";
export { AUTH_ROLES, type AuthRole, inboxPrefix, updatePermissionsDoc } from "./nats-permissions.js";
export {
  hasNatsServer,
  NATS_INSTALL_HINT,
  type NatsServerHandle,
  type NatsServerOptions,
  natsFromEnvOrSpawn,
  type PermissionViolation,
  permissionViolations,
  startNatsServer,
  waitForLog,
} from "./nats-server.js";
