/**
 * Errors are values with a `code` the caller can switch on. Actors never see a
 * thrown protocol error: the runtime turns each into a `SageError`, counts it and
 * (for requests) answers with an `ErrorReply`.
 */
export const ERROR_CODES = [
  "DECODE", // payload bytes are not valid msgpack
  "SCHEMA", // decoded payload does not match the message schema
  "VERSION", // payload carries a version this build does not speak
  "SUBJECT", // subject does not match the template, or a token is not subject-safe
  "TOO_LARGE", // payload exceeds the configured maximum
  "TIMEOUT", // request got no reply in time
  "NO_RESPONDERS", // nobody listens on the request subject
  "HANDLER", // the actor's handler failed while processing a valid message
  "REMOTE", // the responder answered with an error reply
  "CLOSED", // the bus is closed or draining
  "CONFIG", // invalid configuration
  "CONFLICT", // a compare-and-set write kept losing to other writers of the same key
  "AUTH", // NATS refused the credentials, or a subject is outside the role's permissions
  "UNKNOWN_MODEL",
  "NO_CAPACITY",
  "INVALID_REQUEST",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class SageError extends Error {
  readonly code: ErrorCode;
  readonly subject: string | undefined;
  readonly details: unknown;

  constructor(
    code: ErrorCode,
    message: string,
    opts: { subject?: string; details?: unknown; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "SageError";
    this.code = code;
    this.subject = opts.subject;
    this.details = opts.details;
  }

  toJSON(): { code: ErrorCode; message: string; subject?: string } {
    return this.subject === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, subject: this.subject };
  }
}

/** The message of anything thrown (an Error's message, else the value as a string): the one way errors are worded into others. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function isSageError(e: unknown): e is SageError {
  return e instanceof SageError;
}

export type Result<T, E = SageError> = { ok: true; value: T } | { ok: false; error: E };

/** One line naming every invalid field of a schema failure: "models.0.id: unknown model; regions: …". */
export function describeIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`).join("; ");
}

export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const err = <E = SageError>(error: E): Result<never, E> => ({ ok: false, error });
