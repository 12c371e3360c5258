import { Packr } from "msgpackr";
import { errorMessage, SageError } from "./errors.js";

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
  const bad = checkStructure(bytes);
  if (bad !== undefined) return { ok: false, error: new SageError("DECODE", `payload rejected: ${bad}`) };
  try {
    return { ok: true, value: packr.unpack(bytes) };
  } catch (e) {
    return {
      ok: false,
      error: new SageError("DECODE", `payload is not valid msgpack: ${errorMessage(e)}`, { cause: e }),
    };
  }
}

/**
 * Deepest nesting of maps and arrays a payload may have. msgpackr decodes recursively: a payload
 * nested ~10,000 deep overflowed the stack, and whether it did depended on the caller's stack depth
 * and on whether the decoder was JIT-compiled yet, so the same bytes were DECODE in one place and
 * decoded in another (found by test/fuzz-subjects). Our messages nest a few levels; an OpenAI
 * request body carried in `body` is capped at 64 by the gateway.
 */
export const MAX_NESTING_DEPTH = 256;

/**
 * One iterative pass over the msgpack framing, before msgpackr sees the bytes: rejects nesting
 * deeper than MAX_NESTING_DEPTH and extension types other than the two our encoder emits
 * (-1 timestamp, 0 undefined) — msgpackr would otherwise build Errors, RegExps, Sets, typed
 * arrays and bigints from them, some decoding nested msgpack recursively. Strings and binaries are
 * skipped by length, so the cost is per item, not per byte. Truncated input is left to msgpackr.
 */
export function checkStructure(b: Uint8Array, maxDepth = MAX_NESTING_DEPTH): string | undefined {
  const len = b.length;
  const open: number[] = []; // items still expected in each open container
  let pos = 0;
  while (pos < len) {
    const t = b[pos++]!;
    let children = 0;
    let ext = -1;
    if (t <= 0x7f || t >= 0xe0) {
      // fixint
    } else if (t <= 0x8f) children = (t & 0x0f) * 2;
    else if (t <= 0x9f) children = t & 0x0f;
    else if (t <= 0xbf) pos += t & 0x1f;
    else {
      readHeader(b, pos, t);
      pos += head.skip;
      children = head.children;
      ext = head.ext;
    }
    if (ext !== -1 && ext !== 0xff && ext !== 0x00) {
      return `msgpack extension type ${ext > 127 ? ext - 256 : ext} is not accepted`;
    }
    if (children > 0) {
      if (open.length >= maxDepth) return `maps and arrays nested deeper than ${maxDepth}`;
      open.push(children);
      continue;
    }
    // An item is complete: close every container it completes.
    for (let i = open.length - 1; i >= 0; i--) {
      if (--open[i]! > 0) break;
      open.pop();
    }
  }
  return undefined;
}

const u16 = (b: Uint8Array, at: number): number => ((b[at] ?? 0) << 8) | (b[at + 1] ?? 0);
const u32 = (b: Uint8Array, at: number): number =>
  (b[at] ?? 0) * 16777216 + (u16(b, at + 1) << 8) + (b[at + 3] ?? 0);

/** What the type byte just read announces: bytes to skip after it, children, extension type (-1: none). */
const head = { skip: 0, children: 0, ext: -1 };

/** Fills `head` for a type byte in 0xc0..0xdf whose payload starts at `pos` (one shared record: no allocation per item). */
function readHeader(b: Uint8Array, pos: number, t: number): void {
  let skip = 0;
  let children = 0;
  let ext = -1;
  switch (t) {
    case 0xc4:
    case 0xd9:
      skip = 1 + (b[pos] ?? 0);
      break;
    case 0xc5:
    case 0xda:
      skip = 2 + u16(b, pos);
      break;
    case 0xc6:
    case 0xdb:
      skip = 4 + u32(b, pos);
      break;
    case 0xc7:
      ext = b[pos + 1] ?? -1;
      skip = 2 + (b[pos] ?? 0);
      break;
    case 0xc8:
      ext = b[pos + 2] ?? -1;
      skip = 3 + u16(b, pos);
      break;
    case 0xc9:
      ext = b[pos + 4] ?? -1;
      skip = 5 + u32(b, pos);
      break;
    case 0xca:
    case 0xce:
    case 0xd2:
      skip = 4;
      break;
    case 0xcb:
    case 0xcf:
    case 0xd3:
      skip = 8;
      break;
    case 0xcc:
    case 0xd0:
      skip = 1;
      break;
    case 0xcd:
    case 0xd1:
      skip = 2;
      break;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
      ext = b[pos] ?? -1;
      skip = 1 + (1 << (t - 0xd4));
      break;
    case 0xdc:
      children = u16(b, pos);
      skip = 2;
      break;
    case 0xdd:
      children = u32(b, pos);
      skip = 4;
      break;
    case 0xde:
      children = u16(b, pos) * 2;
      skip = 2;
      break;
    case 0xdf:
      children = u32(b, pos) * 2;
      skip = 4;
      break;
    default:
      // nil, false, true, and 0xc1 (never used: msgpackr rejects it)
      break;
  }
  head.skip = skip;
  head.children = children;
  head.ext = ext;
}
