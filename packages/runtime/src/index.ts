// The actor kernel: the Bus and Clock ports, the Actor base, the in-memory bus and the clocks.

// Actors built on the kernel: the bus auditor and the demo node/region pair.
export { type AuditCounts, BusAuditor } from "./actors/auditor.js";
export { type DemoLogEntry, DemoNodeActor, type DemoOptions, DemoRegionActor } from "./actors/demo-actors.js";
export { Actor } from "./kernel/actor.js";
export type { ActorContext, ActorIdentity, ActorStats } from "./kernel/actor-context.js";
export { ClockEvent, KeyedHeap, type TimedEvent } from "./kernel/heap.js";
export type { HandlerMeta } from "./kernel/inbound-gate.js";
export { createLogger, type Logger, memoryLogger, silentLogger } from "./kernel/logger.js";
export { MemoryBroker, type MemoryBrokerOptions } from "./kernel/memory-broker.js";
export { MemoryBus } from "./kernel/memory-bus.js";
export type {
  Bus,
  Clock,
  DurableMessage,
  DurableStream,
  InboundMessage,
  KvPutOptions,
  MessageHandler,
  RequestOptions,
  Rng,
  ServiceHandle,
  ServiceInfo,
  ServiceSpec,
  SubscribeOptions,
  Subscription,
  Timer,
} from "./kernel/ports.js";
export { createRng } from "./kernel/rng.js";
export { eventPoster, VirtualClock, type VirtualClockOptions } from "./kernel/virtual-clock.js";
export { WallClock } from "./kernel/wall-clock.js";

// The NATS adapter: the live bus, its credentials and permissions, local servers and clusters.
export {
  generateNatsAuth,
  type NatsAuthFiles,
  type NatsAuthOptions,
  type ScopedCredential,
} from "./nats/nats-auth.js";
export { NatsBus } from "./nats/nats-bus.js";
export { type NatsClusterHandle, type NatsClusterOptions, startNatsCluster } from "./nats/nats-cluster.js";
export {
  type NatsBusOptions,
  type NatsClientAuth,
  type NatsTlsOptions,
  natsAuthFromEnv,
} from "./nats/nats-options.js";
export { AUTH_ROLES, type AuthRole, inboxPrefix, updatePermissionsDoc } from "./nats/nats-permissions.js";
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
} from "./nats/nats-server.js";

// Process and network helpers: child processes, free ports, HTTP servers.
export { killWithParent } from "./process/children.js";
export { closeServer, listen, listenUrl, readBodyLimited } from "./process/http.js";
export { freePort } from "./process/net.js";
