import { decode, encode, envelope, type MessageDef, validatePayload } from "@sageserve/protocol";
import { createRng } from "@sageserve/runtime";
import { type FuzzFamily, PayloadFuzzer, payloadTarget } from "./fuzz.js";

/**
 * Seeded generator of invalid payloads for one message type: random bytes,
 * truncated encodings, non-map values, wrong versions, missing and mistyped
 * fields. Every payload returned is checked to be invalid.
 */
export function garbagePayloads(
  def: MessageDef,
  count: number,
  seed = 1,
  opts: { keepValid?: boolean } = {},
): Uint8Array[] {
  const rng = createRng(seed, `garbage-${def.name}`);
  const sample = envelope(def, def.sample() as object);
  const fields = Object.keys(sample).filter((k) => k !== "v");
  const weird = (): unknown =>
    rng.pick<unknown>([
      null,
      -1,
      1e308,
      "",
      "x".repeat(rng.int(1, 300)),
      [],
      [1, 2],
      {},
      true,
      { nested: { a: 1 } },
    ]);
  const makers: (() => Uint8Array)[] = [
    () => Uint8Array.from({ length: rng.int(0, 64) }, () => rng.int(0, 255)),
    () => {
      const b = encode(sample);
      return b.subarray(0, rng.int(1, Math.max(1, b.length - 1)));
    },
    () => encode(weird()),
    () => encode({ ...sample, v: rng.pick([0, 2, 99, "1", null]) }),
    () => {
      const copy: Record<string, unknown> = { ...sample };
      delete copy.v;
      return encode(copy);
    },
    () => {
      const copy: Record<string, unknown> = { ...sample };
      delete copy[rng.pick(fields)];
      return encode(copy);
    },
    () => encode({ ...sample, [rng.pick(fields)]: weird() }),
    // Near misses that may well be valid: numbers nudged, strings swapped, optional fields dropped.
    () => {
      const copy: Record<string, unknown> = { ...sample };
      const f = rng.pick(fields);
      const cur = copy[f];
      copy[f] =
        typeof cur === "number"
          ? rng.pick([0, cur * 2, -cur, cur + 0.5, 1])
          : typeof cur === "string"
            ? rng.pick(["", "other", "with space", "x".repeat(200)])
            : typeof cur === "boolean"
              ? !cur
              : undefined;
      return encode(copy);
    },
    () => new TextEncoder().encode(JSON.stringify(sample)),
  ];
  const out: Uint8Array[] = [];
  while (out.length < count) {
    const bytes = rng.pick(makers)();
    if (opts.keepValid || !stillValid(def, bytes)) out.push(bytes);
  }
  return out;
}

/** Decoded exactly as the runtime does: anything that validates is not garbage. */
function stillValid(def: MessageDef, bytes: Uint8Array): boolean {
  const d = decode(bytes);
  return d.ok && validatePayload(def, d.value).ok;
}

/**
 * Invalid payloads from the structured fuzzer (test/support/fuzz.ts): wrong-typed and non-finite
 * numbers, 64-bit integers, deep nesting, extension types, `__proto__` and duplicate keys… All but
 * the MB-sized family, which NATS' own max_payload would refuse before any actor saw it.
 */
export function structuredGarbage(def: MessageDef, count: number, seed = 1): Uint8Array[] {
  const families: FuzzFamily[] = [
    "random",
    "truncated",
    "root",
    "version",
    "delete",
    "wrong-type",
    "number",
    "deep",
    "ext",
    "proto",
    "dup-key",
    "json",
  ];
  const gen = new PayloadFuzzer(payloadTarget(def), seed, { families });
  const out: Uint8Array[] = [];
  while (out.length < count) {
    const c = gen.next();
    if (!stillValid(def, c.bytes)) out.push(c.bytes);
  }
  return out;
}
