import { SageError } from "./errors.js";

/**
 * Subject templates read like paths: `sage.load.{region}.{model}.{instance}`.
 * Each `{param}` is exactly one NATS token. Values are made subject-safe by
 * `encodeToken`, so a model called `llama-3.1-8b` travels as `llama-3~2e1-8b`
 * and comes back unchanged from `decodeToken`.
 */
const SAFE = /^[A-Za-z0-9_-]+$/;
const PARAM = /^\{([a-zA-Z][a-zA-Z0-9]*)\}$/;

const escaped = new Map<string, string>();

export function encodeToken(value: string): string {
  if (value.length === 0) throw new SageError("SUBJECT", "empty subject token");
  if (SAFE.test(value)) return value;
  const hit = escaped.get(value);
  if (hit !== undefined) return hit;
  const out = escapeToken(value);
  if (escaped.size > 10_000) escaped.clear(); // model and region names repeat; request ids are safe
  escaped.set(value, out);
  return out;
}

function escapeToken(value: string): string {
  let out = "";
  for (const ch of value) {
    if (/[A-Za-z0-9_-]/.test(ch)) out += ch;
    else {
      for (const byte of new TextEncoder().encode(ch)) out += `~${byte.toString(16).padStart(2, "0")}`;
    }
  }
  return out;
}

export function decodeToken(token: string): string {
  if (!token.includes("~")) return token;
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const c = token[i]!;
    if (c === "~") {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c.charCodeAt(0));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

export interface SubjectTemplate<P extends string> {
  readonly template: string;
  readonly params: readonly P[];
  /** A concrete subject; every param is required. */
  build(values: Record<P, string>): string;
  /** A subscription pattern: params left out become `*`. */
  pattern(values?: Partial<Record<P, string>>): string;
  /** Params of a concrete subject, or undefined if it does not fit the template. */
  parse(subject: string): Record<P, string> | undefined;
}

export function subjectTemplate<P extends string>(template: string): SubjectTemplate<P> {
  // Compiled once: each token is a literal or a param name, so building a subject is one pass.
  const parts = template.split(".").map((part) => {
    const m = PARAM.exec(part);
    if (m) return { param: m[1] as P, literal: undefined };
    if (!SAFE.test(part) && part !== "$SRV") throw new Error(`bad subject template token '${part}'`);
    return { param: undefined, literal: part };
  });
  const params = parts.flatMap((p) => (p.param === undefined ? [] : [p.param]));
  const fill = (values: Partial<Record<P, string>>, wildcard: boolean): string => {
    let out = "";
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (i > 0) out += ".";
      if (part.param === undefined) {
        out += part.literal;
        continue;
      }
      const v = values[part.param];
      if (v === undefined) {
        if (!wildcard)
          throw new SageError("SUBJECT", `subject ${template} needs a value for {${part.param}}`);
        out += "*";
      } else out += encodeToken(v);
    }
    return out;
  };
  // Concrete subjects repeat (a few per model, region and node): memoised in a tree keyed by each
  // param's value in order, so a hot publish costs a few map lookups instead of escaping and joining.
  type Memo = Map<unknown, Memo | string>;
  const memo: Memo = new Map();
  let memoSize = 0;
  const build = (values: Record<P, string>): string => {
    const n = params.length;
    if (n === 0) return fill(values, false);
    let node = memo;
    for (let i = 0; i < n - 1; i++) {
      const v = values[params[i]!];
      let next = node.get(v) as Memo | undefined;
      if (next === undefined) {
        next = new Map();
        node.set(v, next);
      }
      node = next;
    }
    const last = values[params[n - 1]!];
    let out = node.get(last) as string | undefined;
    if (out === undefined) {
      out = fill(values, false);
      if (++memoSize > 10_000) {
        memo.clear();
        memoSize = 0;
      }
      node.set(last, out);
    }
    return out;
  };
  return {
    template,
    params,
    build,
    pattern: (values = {}) => fill(values, true),
    parse(subject) {
      const tokens = subject.split(".");
      if (tokens.length !== parts.length) return undefined;
      const out = {} as Record<P, string>;
      for (let i = 0; i < parts.length; i++) {
        const part = parts[i]!;
        if (part.param !== undefined) out[part.param] = decodeToken(tokens[i]!);
        else if (part.literal !== tokens[i]) return undefined;
      }
      return out;
    },
  };
}

/** NATS subject matching: `*` matches one token, `>` one or more trailing tokens. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    const t = p[i];
    if (t === ">") return s.length > i;
    if (i >= s.length) return false;
    if (t !== "*" && t !== s[i]) return false;
  }
  return p.length === s.length;
}

/** Is `subject` a valid subject (no empty tokens or whitespace; wildcards only where allowed)? */
export function isValidSubject(subject: string, allowWildcards = false): boolean {
  const n = subject.length;
  if (n === 0) return false;
  let tokenStart = 0;
  for (let i = 0; i <= n; i++) {
    const c = i === n ? 46 : subject.charCodeAt(i);
    if (c === 46 /* . */) {
      const len = i - tokenStart;
      if (len === 0) return false;
      if (len === 1) {
        const t = subject.charCodeAt(tokenStart);
        if ((t === 42 /* * */ || t === 62) /* > */ && !allowWildcards) return false;
        if (t === 62 && i !== n) return false;
      }
      tokenStart = i + 1;
    } else if (c <= 32 || c === 127) {
      return false;
    } else if (
      (c === 42 || c === 62) &&
      !(i === tokenStart && (i + 1 === n || subject.charCodeAt(i + 1) === 46))
    ) {
      return false; // `*` or `>` inside a longer token
    }
  }
  return true;
}
