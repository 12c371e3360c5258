import { _, Ajv2020, type KeywordCxt } from "ajv/dist/2020.js";
import { z } from "zod";

/**
 * Schemas are written in zod (types and docs come from there); at runtime each is
 * exported to JSON Schema once and compiled by ajv into a checker that does not
 * allocate. Measured on a LoadReport: ajv 0.35 µs vs zod safeParse 3.2 µs
 * (docs/benchmarks.md) — validation sits on every message of every actor, in the
 * simulator too. A test checks that the two agree on valid and garbage payloads.
 */
// unicodeRegExp off: our patterns are ASCII classes, and non-"u" regexes run markedly faster.
// strictNumbers on: `strict: false` would otherwise turn it off too, and ajv then accepted NaN and
// ±Infinity as numbers (and Infinity as an integer) where zod rejects them (found by test/fuzz-subjects).
const ajv = new Ajv2020({
  allErrors: false,
  useDefaults: true,
  strict: false,
  strictNumbers: true,
  coerceTypes: false,
  unicodeRegExp: false,
});

/**
 * JSON Schema's "object" is any non-null, non-array object to ajv, so a msgpack timestamp (a Date)
 * or binary (a Uint8Array) passed where the zod schema wants a map or record (found by
 * test/fuzz-subjects: `instancesByGpu` as a Date). Every object node of an exported schema gets
 * this keyword: the value must be a plain map, as msgpack and JSON maps decode to.
 */
ajv.addKeyword({
  keyword: "x-plain-map",
  type: "object",
  // First of the object keywords: ajv skips the ones after `propertyNames` for a map without keys.
  before: "maxProperties",
  schemaType: "boolean",
  error: { message: "must be a map" },
  code(cxt: KeywordCxt) {
    const proto = _`Object.getPrototypeOf(${cxt.data})`;
    cxt.fail(_`${proto} !== Object.prototype && ${proto} !== null`);
  },
});

function markPlainMaps(node: unknown): void {
  if (Array.isArray(node)) {
    for (const n of node) markPlainMaps(n);
    return;
  }
  if (typeof node !== "object" || node === null) return;
  const n = node as Record<string, unknown>;
  const type = n.type;
  if (type === "object" || (Array.isArray(type) && type.includes("object"))) n["x-plain-map"] = true;
  for (const v of Object.values(n)) markPlainMaps(v);
}

export interface CompiledValidator {
  (value: unknown): boolean;
  /** Human-readable reason for the last failure, naming the field. */
  describe(): string;
  errors(): unknown;
}

const cache = new WeakMap<z.ZodType, CompiledValidator>();

export function compiledValidator(schema: z.ZodType): CompiledValidator {
  let v = cache.get(schema);
  if (v) return v;
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any", target: "draft-2020-12" });
  markPlainMaps(json);
  const check = ajv.compile(json);
  v = Object.assign((value: unknown) => check(value) === true, {
    describe: () =>
      (check.errors ?? [])
        .slice(0, 5)
        .map((e) => {
          const path = e.instancePath ? e.instancePath.slice(1).replaceAll("/", ".") : "(root)";
          const extra =
            e.keyword === "required"
              ? ` '${(e.params as { missingProperty: string }).missingProperty}'`
              : e.keyword === "enum"
                ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")})`
                : "";
          return `${path}: ${e.message ?? e.keyword}${extra}`;
        })
        .join("; "),
    errors: () => structuredClone(check.errors ?? []),
  });
  cache.set(schema, v);
  return v;
}
