/**
 * What an actor is given (its bus, clock and logger) and who it is, and the counters it reports in its
 * service stats. Kept apart from the Actor class so the adapters and tools that only pass these around
 * need not read the class.
 */
import type { ErrorCode } from "@sageserve/protocol";
import type { Logger } from "./logger.js";
import type { Bus, Clock } from "./ports.js";

export interface ActorContext {
  bus: Bus;
  clock: Clock;
  log?: Logger;
  /** Validate outgoing payloads against their schema too (default true; simulations may turn it off). */
  validateOutgoing?: boolean;
}

export interface ActorIdentity {
  /** Service type, e.g. "router"; `nats micro ls` groups by it. */
  role: string;
  /** Unique per running actor, e.g. "router-westus-1". */
  id: string;
  version?: string;
  description?: string;
  metadata?: Record<string, string>;
}

export interface ActorStats {
  received: number;
  handled: number;
  published: number;
  publishFailures: number;
  handlerErrors: number;
  rejected: number;
  rejectedByCode: Partial<Record<ErrorCode, number>>;
  rejectedBySubject: Record<string, number>;
}
