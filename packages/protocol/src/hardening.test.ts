import { describe, expect, it } from "vitest";
import { checkStructure, decode, encode, MAX_NESTING_DEPTH } from "./codec.js";
import { describeValue, envelope, validatePayload } from "./message.js";
import { LoadReport, RequestDone } from "./messages.js";
import { DemandReport } from "./messages-control.js";

/** Bad input that once escaped the decode path or passed it wrongly (issue 9; test/fuzz-subjects.test.ts). */
describe("decode path hardening", () => {
  const nested = (depth: number) => {
    const b = new Uint8Array(depth + 1).fill(0x91);
    b[depth] = 0xc0;
    return b;
  };

  it("rejects nesting past MAX_NESTING_DEPTH the same way wherever it is decoded (no stack-depth lottery)", () => {
    expect(decode(nested(MAX_NESTING_DEPTH)).ok).toBe(true);
    for (const depth of [MAX_NESTING_DEPTH + 1, 10_000, 1_000_000]) {
      const d = decode(nested(depth));
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.error.code).toBe("DECODE");
    }
    const recurse = (n: number): boolean => (n === 0 ? decode(nested(10_000)).ok : recurse(n - 1));
    expect(recurse(2_000)).toBe(false);
  });

  it("accepts only the extension types our encoder emits (undefined, timestamp)", () => {
    expect(checkStructure(encode({ a: undefined, d: new Date(5) }))).toBeUndefined();
    for (const type of [0x01, 0x42, 0x65, 0x73, 0x74, 0x78, 0x7f]) {
      const d = decode(Uint8Array.from([0x81, 0xa1, 0x61, 0xd4, type, 0x00]));
      expect(d.ok, String(type)).toBe(false);
      if (!d.ok) expect(d.error.message).toContain("extension type");
    }
  });

  it("a bigint version (a msgpack uint64) is a VERSION error, not a thrown TypeError", () => {
    const d = decode(encode({ ...envelope(LoadReport, LoadReport.sample()), v: 1n }));
    expect(d.ok && typeof (d.value as { v: unknown }).v).toBe("bigint");
    const r = validatePayload(LoadReport, d.ok ? d.value : undefined);
    expect(r.ok ? "ok" : r.error.code).toBe("VERSION");
    expect(describeValue(2n ** 64n - 1n)).toBe("18446744073709551615n");
  });

  it("rejects ±Infinity and NaN in number fields, as zod does", () => {
    for (const x of [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.NaN]) {
      const p = { ...envelope(RequestDone, RequestDone.sample()), ttftMs: x, inputTokens: 1 };
      expect(validatePayload(RequestDone, p).ok, String(x)).toBe(false);
      const q = { ...envelope(RequestDone, RequestDone.sample()), inputTokens: x };
      expect(validatePayload(RequestDone, q).ok, String(x)).toBe(false);
    }
  });

  it("a Date or binary where the schema wants a map is a SCHEMA error", () => {
    const base = envelope(DemandReport, DemandReport.sample());
    expect(validatePayload(DemandReport, base).ok).toBe(true);
    expect(validatePayload(DemandReport, { ...base, instancesByGpu: {} }).ok).toBe(true);
    for (const bad of [new Date(1), new Uint8Array(2)]) {
      const r = validatePayload(DemandReport, { ...base, instancesByGpu: bad });
      expect(r.ok ? "ok" : r.error.code).toBe("SCHEMA");
    }
  });
});
