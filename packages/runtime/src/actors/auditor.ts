import { MESSAGES, type MessageDef } from "@sageserve/protocol";
import { Actor } from "../kernel/actor.js";
import type { ActorContext } from "../kernel/actor-context.js";

export interface AuditCounts {
  valid: number;
  rejected: number;
}

/**
 * Listens, passively, to every declared subject and checks every payload
 * against its schema. Operators run it to find out who publishes what, and
 * which publisher sends bad messages; it never answers requests.
 */
export class BusAuditor extends Actor {
  private readonly valid = new Map<string, number>();
  private readonly messages: readonly MessageDef[];

  constructor(ctx: ActorContext, opts: { id?: string; messages?: readonly MessageDef[] } = {}) {
    super(ctx, {
      role: "auditor",
      id: opts.id ?? "auditor",
      description: "validates every message on the bus and counts rejects per subject",
    });
    this.messages = opts.messages ?? MESSAGES;
  }

  protected setup(): void {
    for (const def of this.messages) {
      this.on(
        def,
        {},
        () => {
          this.valid.set(def.name, (this.valid.get(def.name) ?? 0) + 1);
        },
        { broadcast: true, passive: true },
      );
    }
  }

  /** Valid and rejected counts per message name. */
  counts(): Record<string, AuditCounts> {
    const s = this.stats();
    const out: Record<string, AuditCounts> = {};
    for (const def of this.messages) {
      out[def.name] = {
        valid: this.valid.get(def.name) ?? 0,
        rejected: s.rejectedBySubject[def.subject.template] ?? 0,
      };
    }
    return out;
  }
}
