/**
 * What crosses a NATS connection besides the bytes themselves: the payload size limit on the way out,
 * and the client's errors (thrown or reported on the connection's status) turned into SageError codes
 * callers switch on. Shared by the bus, its JetStream queues and its stores.
 */
import { encode, errorMessage, SageError } from "@sageserve/protocol";
import { ErrorCode, type NatsError } from "nats";

/** `data` encoded, or TOO_LARGE when it exceeds the connection's `maxPayload`. */
export function encodePayload(data: unknown, subject: string, maxPayload: number): Uint8Array {
  const bytes = encode(data);
  if (bytes.byteLength > maxPayload) {
    throw new SageError("TOO_LARGE", `payload of ${bytes.byteLength} bytes exceeds ${maxPayload}`, {
      subject,
    });
  }
  return bytes;
}

/** An asynchronous server error from the connection's status, e.g. a publish outside this role's permissions. */
export function statusError(s: { data: unknown }): SageError {
  const ctx = (s as { permissionContext?: { operation: string; subject: string } }).permissionContext;
  return ctx
    ? new SageError("AUTH", `NATS permissions violation: ${ctx.operation} '${ctx.subject}'`, {
        subject: ctx.subject,
      })
    : new SageError(/PERMISSION/i.test(String(s.data)) ? "AUTH" : "CLOSED", `NATS: ${String(s.data)}`);
}

export function mapError(e: unknown, subject: string, timeoutMs?: number): SageError {
  if (e instanceof SageError) return e;
  const ne = e as NatsError;
  switch (ne?.code) {
    case ErrorCode.Timeout:
      return new SageError(
        "TIMEOUT",
        `request on ${subject} timed out${timeoutMs === undefined ? "" : ` after ${timeoutMs} ms`}`,
        {
          subject,
          cause: e,
        },
      );
    case ErrorCode.NoResponders:
      return new SageError("NO_RESPONDERS", `no responders on ${subject}`, { subject, cause: e });
    case ErrorCode.ConnectionClosed:
    case ErrorCode.ConnectionDraining:
      return new SageError("CLOSED", `connection closed while using ${subject}`, { subject, cause: e });
    case ErrorCode.PermissionsViolation:
      return new SageError("AUTH", `NATS permissions violation on ${subject}: ${errorMessage(e)}`, {
        subject,
        cause: e,
      });
    case ErrorCode.MaxPayloadExceeded:
      return new SageError("TOO_LARGE", `payload too large for ${subject}`, { subject, cause: e });
    default:
      return new SageError("CLOSED", `NATS error on ${subject}: ${(e as Error)?.message ?? String(e)}`, {
        subject,
        cause: e,
      });
  }
}

/** A JetStream hiccup a retry can outlive: a timeout, no responders, or a stream without a leader. */
export function transient(e: SageError): boolean {
  return (
    e.code === "TIMEOUT" || e.code === "NO_RESPONDERS" || /temporarily unavailable|no leader/i.test(e.message)
  );
}
