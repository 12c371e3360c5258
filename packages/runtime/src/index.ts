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

// Process and network helpers: child processes, free ports, HTTP servers (the NATS adapter, @sageserve/nats, uses them too).
export { killWithParent } from "./process/children.js";
export { closeServer, listen, listenUrl, readBodyLimited } from "./process/http.js";
export { freePort, freePorts } from "./process/net.js";
