import { encode, envelope, type MessageDef } from "@sageserve/protocol";
import { createRng, type Rng } from "@sageserve/runtime";

/**
 * Seeded, structured fuzzing of one message type's wire payloads (issue 9, "Bad input").
 *
 * Every case starts from the message's valid sample (`def.sample()`, or `def.replySample()` for
 * replies) and applies one mutation family, or is raw bytes. Families:
 *
 * - `random`: random bytes (short and long, some starting with a map header)
 * - `truncated`: a valid encoding cut short
 * - `root`: a non-map root value
 * - `version`: wrong envelope version (0, 2, "1", null, 1.5, NaN, bigint, huge string, …) or none
 * - `delete`: one or more fields deleted (top level or nested)
 * - `wrong-type`: a field (at any depth) replaced by a value of another type
 * - `number`: NaN, ±Infinity, -0, 1e308, 2^53+1, 5e-324, 64-bit integers (bigint when decoded), …
 * - `huge`: 1 MB strings, 1.1 MB strings (over the payload limit), 100k-element arrays, 50k-key maps
 * - `deep`: arrays and maps nested 100, 1,000, 10,000 and 100,000 deep (as a field or as the root)
 * - `ext`: msgpack extension types (timestamp, msgpackr's bigint/error/set/regexp/typed-array
 *   codes, unknown codes, reference codes), plus header lies (lengths past the end)
 * - `proto`: `__proto__`, `constructor`, `prototype`, `toString`… keys at the root or nested
 * - `dup-key`: the same key twice in one map
 * - `json`: the sample as JSON text instead of msgpack
 * - `near`: near misses that may well be valid (numbers nudged, strings swapped, optional fields
 *   dropped, other enum values)
 * - `valid`: the sample itself
 *
 * Raw msgpack fragments (deep nesting, extension types, -0 as float64, uint64) that msgpackr would
 * not produce from a JS value are spliced in place of a placeholder string.
 */
export const FUZZ_FAMILIES = [
  "random",
  "truncated",
  "root",
  "version",
  "delete",
  "wrong-type",
  "number",
  "huge",
  "deep",
  "ext",
  "proto",
  "dup-key",
  "json",
  "near",
  "valid",
] as const;
export type FuzzFamily = (typeof FUZZ_FAMILIES)[number];

export interface FuzzCase {
  family: FuzzFamily;
  bytes: Uint8Array;
}

/** What to fuzz: a message's payload (`def.schema`, `def.sample`) or its reply. */
export interface FuzzTarget {
  name: string;
  version: number;
  sample: () => unknown;
}

export const payloadTarget = (def: MessageDef): FuzzTarget => ({
  name: def.name,
  version: def.version,
  sample: def.sample,
});

export const replyTarget = (def: MessageDef): FuzzTarget => {
  const s = def.replySample as (() => unknown) | undefined;
  if (!s) throw new Error(`${def.name} has no reply`);
  return { name: `${def.name}.reply`, version: def.version, sample: s };
};

// Weights: the costly families (MB-sized payloads, 10k-deep nesting) are rarer: ~0.4 % huge.
const WEIGHTS: Record<FuzzFamily, number> = {
  random: 8,
  truncated: 8,
  root: 5,
  version: 8,
  delete: 8,
  "wrong-type": 12,
  number: 10,
  huge: 0.5,
  deep: 4,
  ext: 8,
  proto: 6,
  "dup-key": 4,
  json: 3,
  near: 10,
  valid: 3,
};

const PLACEHOLDER = "\u0001FUZZ\u0001";
const PLACEHOLDER_BYTES = encode(PLACEHOLDER);

/** Raw msgpack: an array nested `depth` deep around nil. */
export function deepArrayBytes(depth: number): Uint8Array {
  const b = new Uint8Array(depth + 1).fill(0x91);
  b[depth] = 0xc0;
  return b;
}

/** Raw msgpack: `{a: {a: … nil}}` nested `depth` deep. */
export function deepMapBytes(depth: number): Uint8Array {
  const b = new Uint8Array(depth * 3 + 1);
  for (let i = 0; i < depth; i++) b.set([0x81, 0xa1, 0x61], i * 3);
  b[depth * 3] = 0xc0;
  return b;
}

const deepCache = new Map<string, Uint8Array>();
function deepBytes(kind: "array" | "map", depth: number): Uint8Array {
  const key = `${kind}${depth}`;
  let b = deepCache.get(key);
  if (!b) {
    b = kind === "array" ? deepArrayBytes(depth) : deepMapBytes(depth);
    deepCache.set(key, b);
  }
  return b;
}

const be64 = (hi: number, lo: number): number[] => [
  (hi >>> 24) & 255,
  (hi >>> 16) & 255,
  (hi >>> 8) & 255,
  hi & 255,
  (lo >>> 24) & 255,
  (lo >>> 16) & 255,
  (lo >>> 8) & 255,
  lo & 255,
];

/** Numeric edge cases as raw msgpack (msgpackr would normalise some of them when packing). */
const RAW_NUMBERS: readonly number[][] = [
  [0xcb, ...be64(0x80000000, 0)], // float64 -0
  [0xcb, ...be64(0x7ff80000, 0)], // float64 NaN
  [0xcb, ...be64(0x7ff00000, 0)], // float64 +Infinity
  [0xcb, ...be64(0xfff00000, 0)], // float64 -Infinity
  [0xca, 0x7f, 0xc0, 0, 0], // float32 NaN
  [0xca, 0x80, 0, 0, 0], // float32 -0
  [0xcf, ...be64(0xffffffff, 0xffffffff)], // uint64 max → bigint
  [0xcf, ...be64(0x00200000, 1)], // 2^53 + 1 → bigint
  [0xd3, ...be64(0x80000000, 0)], // int64 min → bigint
  [0xd3, ...be64(0xffffffff, 0xffffffff)], // int64 -1
  [0xcf, ...be64(0, 1)], // uint64 1 (decodes as a bigint)
];

/** Extension types and header lies as raw msgpack. */
const RAW_EXT: readonly number[][] = [
  ...[0x00, 0x01, 0x42, 0x62, 0x65, 0x69, 0x70, 0x73, 0x74, 0x78, 0x7f, 0x80, 0xfe, 0xff].flatMap((t) => [
    [0xd4, t, 0x00],
    [0xd5, t, 0x92, 0x01],
    [0xc7, 3, t, 0x92, 0x01, 0x02],
    [0xd6, t, 0x00, 0x00, 0x00, 0x01],
  ]),
  [0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00], // a valid timestamp (Date)
  [0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // timestamp64, nanoseconds out of range
  [0xc7, 12, 0xff, ...new Array(12).fill(0xff)], // timestamp96, extreme
  [0xc7, 5, 0x74, 0x01, 0x01, 0x02, 0x03, 0x04], // typed array (code 1)
  [0xc7, 4, 0x78, 0x92, 0xa1, 0x28, 0xa0], // RegExp("(") → SyntaxError
  [0xc7, 9, 0x65, 0x92, 0xa5, 0x45, 0x72, 0x72, 0x6f, 0x72, 0xa1, 0x78], // Error("x")
  [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], // ext32 length past the end
  [0xdd, 0xff, 0xff, 0xff, 0xff], // array32 of 4 G elements, none present
  [0xdd, 0x7f, 0xff, 0xff, 0xff, 0x01], // array32 of 2 G elements
  [0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61], // map32 of 4 G entries
  [0xdb, 0x7f, 0xff, 0xff, 0xff, 0x41], // str32 of 2 GB
  [0xc6, 0xff, 0xff, 0xff, 0xff], // bin32 of 4 GB
  [0x81, 0x91, 0x01, 0x01], // a map with an array as key
  [0x81, 0x81, 0xa1, 0x61, 0x01, 0x01], // a map with a map as key
  [0x81, 0xc0, 0x01], // a map with nil as key
  [0xc1], // the never-used byte
  [0xde, 0x00, 0x02, 0xa1, 0x61], // map16 claiming 2 entries, half of one present
];

const PROTO_KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf"];

let hugeString: string | undefined;
let hugerString: string | undefined;

export interface FuzzOptions {
  /** Restrict to these families (default all). */
  families?: readonly FuzzFamily[];
}

/** A deterministic stream of fuzz cases for one target. */
export class PayloadFuzzer {
  private readonly rng: Rng;
  private readonly sample: Record<string, unknown>;
  private readonly paths: (string | number)[][];
  private readonly fields: string[];
  private readonly families: FuzzFamily[];
  private readonly totalWeight: number;
  private readonly hugeCache = new Map<string, Uint8Array>();

  constructor(target: FuzzTarget, seed: number, opts: FuzzOptions = {}) {
    this.rng = createRng(seed, `fuzz-${target.name}`);
    this.sample = envelope(target, target.sample() as object);
    this.fields = Object.keys(this.sample).filter((k) => k !== "v");
    this.paths = collectPaths(this.sample).filter((p) => !(p.length === 1 && p[0] === "v"));
    this.families = [...(opts.families ?? FUZZ_FAMILIES)];
    this.totalWeight = this.families.reduce((a, f) => a + WEIGHTS[f], 0);
  }

  next(): FuzzCase {
    let x = this.rng.next() * this.totalWeight;
    let family = this.families[0]!;
    for (const f of this.families) {
      x -= WEIGHTS[f];
      if (x < 0) {
        family = f;
        break;
      }
    }
    return { family, bytes: this.make(family) };
  }

  private copy(): Record<string, unknown> {
    return structuredClone(this.sample);
  }

  private make(family: FuzzFamily): Uint8Array {
    const rng = this.rng;
    switch (family) {
      case "random": {
        const n = rng.pick([rng.int(0, 16), rng.int(0, 64), rng.int(64, 4096)]);
        const b = Uint8Array.from({ length: n }, () => rng.int(0, 255));
        if (n > 0 && rng.next() < 0.3) b[0] = rng.pick([0x80 | rng.int(0, 15), 0xde, 0xdf]);
        return b;
      }
      case "truncated": {
        const b = encode(this.sample);
        return b.subarray(0, rng.int(1, Math.max(1, b.length - 1)));
      }
      case "root":
        return rng.next() < 0.3
          ? Uint8Array.from(rng.pick([...RAW_NUMBERS, ...RAW_EXT]))
          : encode(this.weird());
      case "version": {
        const c = this.copy();
        const r = rng.next();
        if (r < 0.15) delete c.v;
        else if (r < 0.3) return this.splice(c, ["v"], Uint8Array.from(rng.pick(RAW_NUMBERS)));
        else if (r < 0.4) return this.splice(c, ["v"], Uint8Array.from(rng.pick(RAW_EXT)));
        else
          c.v = rng.pick<unknown>([
            0,
            2,
            99,
            -1,
            1.5,
            1.0000001,
            "1",
            "v1",
            null,
            true,
            [],
            [1],
            {},
            { v: 1 },
            Number.NaN,
            Number.POSITIVE_INFINITY,
            1e308,
            2 ** 53 + 1,
            10n,
            2n ** 63n - 1n,
            -(2n ** 63n),
            "x".repeat(rng.int(100, 20_000)),
            new Uint8Array([1]),
            new Date(0),
          ]);
        return encode(c);
      }
      case "delete": {
        const c = this.copy();
        if (rng.next() < 0.5) {
          const n = rng.int(1, Math.max(1, this.fields.length));
          for (let i = 0; i < n; i++) delete c[rng.pick(this.fields)];
        } else deleteAt(c, rng.pick(this.paths));
        return encode(c);
      }
      case "wrong-type": {
        const c = this.copy();
        const path = rng.pick(this.paths);
        if (rng.next() < 0.2)
          return this.splice(c, path, Uint8Array.from(rng.pick([...RAW_EXT, ...RAW_NUMBERS])));
        setAt(c, path, this.weird(typeof getAt(this.sample, path)));
        return encode(c);
      }
      case "number": {
        const c = this.copy();
        const numeric = this.paths.filter((p) => typeof getAt(this.sample, p) === "number");
        const path = rng.pick(numeric.length ? numeric : this.paths);
        if (rng.next() < 0.4) return this.splice(c, path, Uint8Array.from(rng.pick(RAW_NUMBERS)));
        setAt(
          c,
          path,
          rng.pick<unknown>([
            Number.NaN,
            Number.POSITIVE_INFINITY,
            Number.NEGATIVE_INFINITY,
            1e308,
            -1e308,
            2 ** 53 + 1,
            -(2 ** 53 + 1),
            2 ** 31,
            2 ** 32,
            2 ** 64,
            5e-324,
            -5e-324,
            0.1,
            -1,
            0,
            1n,
            2n ** 63n - 1n,
            -(2n ** 63n),
            2n ** 64n - 1n,
          ]),
        );
        return encode(c);
      }
      case "huge": {
        // MB-sized encodings are cached per variant and place: the same bytes again cost no encoding.
        const path = [rng.pick(this.fields)];
        const r = Math.floor(rng.next() * 10) / 10 + 0.05;
        const key = `${r}:${path.join(".")}`;
        const hit = this.hugeCache.get(key);
        if (hit) return hit;
        const c = this.copy();
        hugeString ??= "x".repeat(1_000_000);
        hugerString ??= "y".repeat(1_100_000);
        if (r < 0.3) setAt(c, path, hugeString);
        else if (r < 0.4)
          setAt(c, path, hugerString); // over the 1 MiB payload limit: TOO_LARGE
        else if (r < 0.6)
          setAt(
            c,
            path,
            Array.from({ length: 100_000 }, (_, i) => i),
          );
        else if (r < 0.75) {
          // A huge array of plausible elements where the schema has an array.
          const arrays = this.paths.filter((p) => Array.isArray(getAt(this.sample, p)));
          const at = arrays.length ? rng.pick(arrays) : path;
          const cur = getAt(this.sample, at);
          const el = Array.isArray(cur) && cur.length ? cur[0] : 1;
          setAt(
            c,
            at,
            Array.from({ length: 30_000 }, () => el),
          );
        } else if (r < 0.9) {
          const m: Record<string, number> = {};
          for (let i = 0; i < 50_000; i++) m[`k${i}`] = i;
          setAt(c, path, m);
        } else {
          // Many unknown top-level fields.
          for (let i = 0; i < 20_000; i++) c[`extra${i}`] = i;
        }
        const bytes = encode(c);
        this.hugeCache.set(key, bytes);
        return bytes;
      }
      case "deep": {
        const depth = rng.pick([100, 1_000, 10_000, 10_000, 100_000]);
        const raw = deepBytes(rng.next() < 0.5 ? "array" : "map", depth);
        if (rng.next() < 0.2) return raw; // as the root
        return this.splice(this.copy(), rng.pick(this.paths), raw);
      }
      case "ext":
        return this.splice(this.copy(), rng.pick(this.paths), Uint8Array.from(rng.pick(RAW_EXT)));
      case "proto": {
        const c = this.copy();
        const objects = [[], ...this.paths.filter((p) => isPlainObject(getAt(this.sample, p)))];
        const at = rng.pick(objects);
        const holder = (at.length ? getAt(c, at) : c) as Record<string, unknown>;
        const key = rng.pick(PROTO_KEYS);
        // An own property named like the prototype machinery, as JSON.parse or a msgpack map makes it.
        Object.defineProperty(holder, key, {
          value: rng.pick<unknown>([
            { polluted: true, v: 1 },
            { prototype: { polluted: true } },
            "x",
            1,
            null,
          ]),
          enumerable: true,
          writable: true,
          configurable: true,
        });
        return encode(c);
      }
      case "dup-key": {
        // Append a second copy of one key to the root map (fixmap or map16 header).
        const b = encode(this.sample);
        const key = rng.pick([...this.fields, "v"]);
        const extra = concat(encode(key), encode(this.weird()));
        const out = concat(b, extra);
        if (b[0]! >= 0x80 && b[0]! <= 0x8e) out[0] = b[0]! + 1;
        else if (b[0] === 0xde) {
          const n = ((b[1]! << 8) | b[2]!) + 1;
          out[1] = n >> 8;
          out[2] = n & 255;
        } else return b;
        return out;
      }
      case "json":
        return new TextEncoder().encode(JSON.stringify(this.sample));
      case "near": {
        const c = this.copy();
        const r = rng.next();
        if (r < 0.25) {
          // Drop a field (optional ones make it valid).
          delete c[rng.pick(this.fields)];
        } else {
          const path = rng.pick(this.paths);
          const cur = getAt(this.sample, path);
          setAt(
            c,
            path,
            typeof cur === "number"
              ? rng.pick([0, cur * 2, -cur, cur + 0.5, cur + 1, 1, 1e9])
              : typeof cur === "string"
                ? rng.pick([
                    "",
                    "other",
                    "with space",
                    "x".repeat(rng.pick([64, 128, 129, 256, 257])),
                    "iw-normal",
                    "niw",
                    "queued",
                    "serving",
                    "stop",
                    "é-ü~.*>",
                  ])
                : typeof cur === "boolean"
                  ? !cur
                  : Array.isArray(cur)
                    ? rng.pick([[], [...cur, ...cur]])
                    : undefined,
          );
        }
        return encode(c);
      }
      case "valid":
        return encode(this.sample);
    }
  }

  /** A value of another type than `not` (or any when not given). */
  private weird(not?: string): unknown {
    const all: unknown[] = [
      null,
      true,
      false,
      0,
      -1,
      1.5,
      "",
      "x",
      "with space",
      "x".repeat(this.rng.int(1, 300)),
      [],
      [1, 2],
      [null],
      {},
      { nested: { a: 1 } },
      { v: 1 },
      new Uint8Array([1, 2, 3]),
      new Date(1_700_000_000_000),
      undefined,
    ];
    const ok = not === undefined ? all : all.filter((x) => typeof x !== not);
    return this.rng.pick(ok);
  }

  /** Encode `obj` with the raw msgpack `raw` in place of the value at `path`. */
  private splice(obj: Record<string, unknown>, path: (string | number)[], raw: Uint8Array): Uint8Array {
    setAt(obj, path, PLACEHOLDER);
    const b = encode(obj);
    const i = indexOf(b, PLACEHOLDER_BYTES);
    if (i < 0) return raw;
    return concat(b.subarray(0, i), raw, b.subarray(i + PLACEHOLDER_BYTES.length));
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** Every path into the value (objects and arrays, depth ≤ 5), leaves and inner nodes. */
function collectPaths(v: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []) {
  if (prefix.length >= 5) return out;
  if (Array.isArray(v)) {
    v.slice(0, 3).forEach((x, i) => {
      out.push([...prefix, i]);
      collectPaths(x, [...prefix, i], out);
    });
  } else if (isPlainObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      out.push([...prefix, k]);
      collectPaths(x, [...prefix, k], out);
    }
  }
  return out;
}

function getAt(v: unknown, path: readonly (string | number)[]): unknown {
  let cur = v;
  for (const p of path) cur = (cur as Record<string | number, unknown> | undefined)?.[p];
  return cur;
}

function setAt(v: Record<string, unknown>, path: readonly (string | number)[], value: unknown): void {
  const parent = getAt(v, path.slice(0, -1)) as Record<string | number, unknown>;
  parent[path.at(-1)!] = value;
}

function deleteAt(v: Record<string, unknown>, path: readonly (string | number)[]): void {
  const parent = getAt(v, path.slice(0, -1));
  const last = path.at(-1)!;
  if (Array.isArray(parent) && typeof last === "number") parent.splice(last, 1);
  else delete (parent as Record<string | number, unknown>)[last];
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
