import { decode, MESSAGES, validatePayload } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import { garbagePayloads } from "./support/garbage.js";

/**
 * Runtime validation uses ajv on the JSON Schema exported from zod; zod stays the
 * source of truth. They must agree on every payload the fuzzer can produce.
 */
describe("compiled validators agree with the zod schemas", () => {
  it.each(MESSAGES.map((m) => [m.name, m] as const))(
    "%s: same verdict on 500 mutated payloads",
    (_n, def) => {
      let checked = 0;
      let valid = 0;
      for (const bytes of garbagePayloads(def, 500, 77, { keepValid: true })) {
        const d = decode(bytes);
        if (
          !d.ok ||
          typeof d.value !== "object" ||
          d.value === null ||
          (d.value as { v?: unknown }).v !== def.version
        ) {
          continue; // decode and version errors are decided before either schema runs
        }
        const zodOk = def.schema.safeParse(structuredClone(d.value)).success;
        if (zodOk) valid++;
        expect(validatePayload(def, d.value).ok, JSON.stringify(d.value).slice(0, 300)).toBe(zodOk);
        checked++;
      }
      expect(checked).toBeGreaterThan(50);
      expect(valid, "some mutations stay valid, so both verdicts are exercised").toBeGreaterThan(0);
      expect(validatePayload(def, { ...(def.sample() as object), v: def.version }).ok).toBe(true);
    },
  );
});
