import { Packr } from "msgpackr";
import { SageError } from "./errors.js";

/**
 * Wire codec: MessagePack via msgpackr, plain maps (no shared record structures,
 * so any process can decode any message without coordinating a structure table).
 */
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

/** Default upper bound for one payload; NATS' own default max_payload is 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

export function encode(value: unknown): Uint8Array {
  return packr.pack(value);
}

/** Decode bytes; never throws: garbage becomes a DECODE or TOO_LARGE SageError value. */
export function decode(
  bytes: Uint8Array,
  maxBytes = DEFAULT_MAX_PAYLOAD_BYTES,
): { ok: true; value: unknown } | { ok: false; error: SageError } {
  if (bytes.byteLength > maxBytes) {
    return {
      ok: false,
      error: new SageError("TOO_LARGE", `payload of ${bytes.byteLength} bytes exceeds ${maxBytes}`),
    };
  }
  if (bytes.byteLength === 0) {
    return { ok: false, error: new SageError("DECODE", "empty payload") };
  }
  try {
    return { ok: true, value: packr.unpack(bytes) };
  } catch (e) {
    return {
      ok: false,
      error: new SageError("DECODE", `payload is not valid msgpack: ${(e as Error).message}`, { cause: e }),
    };
  }
}
