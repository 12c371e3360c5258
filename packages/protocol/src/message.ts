import { z } from "zod";
import { type Result, SageError } from "./errors.js";
import { type SubjectTemplate, subjectTemplate } from "./subject.js";
import { compiledValidator } from "./validator.js";

/** Who can appear as publisher or listener in a message's doc line. */
export type Role =
  | "gateway"
  | "router"
  | "region-agent"
  | "planner"
  | "node-agent"
  | "vm-provider"
  | "simulator"
  | "dashboard"
  | "cli"
  | "auditor";

export type MessageKind = "event" | "request" | "stream";

export interface MessageDef<
  N extends string = string,
  P extends string = string,
  S extends z.ZodType = z.ZodType,
  R extends z.ZodType | undefined = z.ZodType | undefined,
> {
  readonly name: N;
  readonly kind: MessageKind;
  readonly version: number;
  readonly subject: SubjectTemplate<P>;
  readonly schema: S;
  /** Reply schema for requests (an ErrorReply is always also allowed). */
  readonly reply: R;
  readonly publishers: readonly Role[];
  readonly listeners: readonly Role[];
  /** Queue group listeners should join, when the work must be done once, not by everyone. */
  readonly queueGroup: string | undefined;
  /** Carried by a JetStream stream rather than core NATS alone. */
  readonly durable: boolean;
  readonly doc: string;
  /** A valid payload, used by docs, fuzzing and tests. */
  readonly sample: () => z.input<S>;
  readonly replySample: R extends z.ZodType ? () => z.input<R> : undefined;
}

export type Payload<D extends MessageDef> = z.output<D["schema"]>;
export type PayloadIn<D extends MessageDef> = z.input<D["schema"]>;
export type ReplyOf<D extends MessageDef> = D["reply"] extends z.ZodType ? z.output<D["reply"]> : never;
export type ReplyIn<D extends MessageDef> = D["reply"] extends z.ZodType ? z.input<D["reply"]> : never;
export type ParamsOf<D extends MessageDef> = D extends MessageDef<string, infer P> ? P : never;

/**
 * Declare a message. The valid sample comes in a second call so TypeScript checks it
 * against the finished schema: `defineMessage({...}).withSample(() => ({...}))`.
 */
export function defineMessage<
  N extends string,
  P extends string,
  S extends z.ZodType,
  R extends z.ZodType | undefined = undefined,
>(spec: {
  name: N;
  kind: MessageKind;
  version: number;
  subject: string;
  schema: S;
  reply?: R;
  publishers: Role[];
  listeners: Role[];
  queueGroup?: string;
  durable?: boolean;
  doc: string;
}): {
  withSample(
    sample: () => z.input<S>,
    ...replySample: R extends z.ZodType ? [() => z.input<R>] : []
  ): MessageDef<N, P, S, R>;
} {
  return {
    withSample: (sample, ...replySample) => ({
      name: spec.name,
      kind: spec.kind,
      version: spec.version,
      subject: subjectTemplate<P>(spec.subject),
      schema: spec.schema,
      reply: spec.reply as R,
      publishers: spec.publishers,
      listeners: spec.listeners,
      queueGroup: spec.queueGroup,
      durable: spec.durable ?? false,
      doc: spec.doc,
      sample,
      replySample: replySample[0] as MessageDef<N, P, S, R>["replySample"],
    }),
  };
}

/** The error answer any request may get instead of its reply. */
export const ErrorReplySchema = z.object({
  error: z.object({ code: z.string(), message: z.string() }),
});
export type ErrorReply = z.output<typeof ErrorReplySchema>;

/**
 * Check the envelope version, then the schema. The wire form is the payload plus
 * `v: <version>`. The value is checked in place (no copy): unknown fields, `v`
 * included, pass through untouched, and schema defaults are filled in.
 */
export function validatePayload<S extends z.ZodType>(
  def: { name: string; version: number; schema: S },
  value: unknown,
  subject?: string,
): Result<z.output<S>> {
  const opts = subject === undefined ? {} : { subject };
  if (typeof value !== "object" || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) {
    return {
      ok: false,
      error: new SageError("SCHEMA", `${def.name}: payload must be a map, got ${kindOf(value)}`, opts),
    };
  }
  const v = (value as { v?: unknown }).v;
  if (v !== def.version) {
    return {
      ok: false,
      error: new SageError(
        "VERSION",
        `${def.name}: unsupported version ${describeValue(v)}, this build speaks v${def.version}`,
        opts,
      ),
    };
  }
  const check = compiledValidator(def.schema);
  let valid: boolean;
  try {
    valid = check(value);
  } catch (e) {
    // Defence in depth: a checker that throws on some exotic value must still give a typed error.
    return { ok: false, error: new SageError("SCHEMA", `${def.name}: ${String(e)}`, { ...opts, cause: e }) };
  }
  if (!valid) {
    return {
      ok: false,
      error: new SageError("SCHEMA", `${def.name}: ${check.describe()}`, {
        ...opts,
        details: check.errors(),
      }),
    };
  }
  return { ok: true, value: value as z.output<S> };
}

/**
 * A short, never-throwing rendering of an untrusted value for error messages. `JSON.stringify` threw
 * on a bigint (msgpack uint64/int64 decode to one: `{ v: 2n }`) and on deep nesting, and the error
 * escaped validation uncounted (found by test/fuzz-subjects).
 */
export function describeValue(v: unknown): string {
  switch (typeof v) {
    case "undefined":
      return "undefined";
    case "bigint":
      return `${v}n`;
    case "number":
    case "boolean":
      return String(v);
    case "string":
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
    default:
      return kindOf(v);
  }
}

/** Validate a reply: either the def's reply schema or an ErrorReply (which becomes a REMOTE error). */
export function validateReply<D extends MessageDef>(
  def: D,
  value: unknown,
  subject?: string,
): Result<ReplyOf<D>> {
  if (!def.reply) throw new Error(`${def.name} is not a request`);
  if (typeof value === "object" && value !== null && "error" in value) {
    const er = ErrorReplySchema.safeParse(value);
    if (er.success) {
      return {
        ok: false,
        error: new SageError(
          "REMOTE",
          `${def.name}: responder failed with ${er.data.error.code}: ${er.data.error.message}`,
          { ...(subject === undefined ? {} : { subject }), details: er.data.error },
        ),
      };
    }
  }
  return validatePayload(
    { name: `${def.name}.reply`, version: def.version, schema: def.reply },
    value,
    subject,
  ) as Result<ReplyOf<D>>;
}

/** Wire form of a payload: a copy of the payload plus its version. */
export function envelope(def: { version: number }, payload: object): Record<string, unknown> {
  return { ...payload, v: def.version };
}

/**
 * Stamp the version onto the payload object itself (no copy): the hot path of
 * `Actor.publish`, where payloads are fresh literals. Frozen objects are copied.
 */
export function stampVersion(def: { version: number }, payload: object): Record<string, unknown> {
  if (Object.isFrozen(payload)) return envelope(def, payload);
  (payload as { v?: number }).v = def.version;
  return payload as Record<string, unknown>;
}

function kindOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (v instanceof Uint8Array) return "binary";
  return typeof v;
}
