import { SageError } from "./errors.js";

/**
 * Subject templates read like paths: `sage.load.{region}.{model}.{instance}`.
 * Each `{param}` is exactly one NATS token. Values are made subject-safe by
 * `encodeToken`, so a model called `llama-3.1-8b` travels as `llama-3~2e1-8b`
 * and comes back unchanged from `decodeToken`.
 */
const SAFE = /^[A-Za-z0-9_-]+$/;
const PARAM = /^\{([a-zA-Z][a-zA-Z0-9]*)\}$/;

export function encodeToken(value: string): string {
  if (value.length === 0) throw new SageError("SUBJECT", "empty subject token");
  if (SAFE.test(value)) return value;
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
  const parts = template.split(".");
  const params: P[] = [];
  for (const part of parts) {
    const m = PARAM.exec(part);
    if (m) params.push(m[1] as P);
    else if (!SAFE.test(part) && part !== "$SRV") throw new Error(`bad subject template token '${part}'`);
  }
  const fill = (values: Partial<Record<P, string>>, wildcard: boolean): string =>
    parts
      .map((part) => {
        const m = PARAM.exec(part);
        if (!m) return part;
        const v = values[m[1] as P];
        if (v === undefined) {
          if (wildcard) return "*";
          throw new SageError("SUBJECT", `subject ${template} needs a value for {${m[1]}}`);
        }
        return encodeToken(v);
      })
      .join(".");
  return {
    template,
    params,
    build: (values) => fill(values, false),
    pattern: (values = {}) => fill(values, true),
    parse(subject) {
      const tokens = subject.split(".");
      if (tokens.length !== parts.length) return undefined;
      const out = {} as Record<P, string>;
      for (let i = 0; i < parts.length; i++) {
        const m = PARAM.exec(parts[i]!);
        if (m) out[m[1] as P] = decodeToken(tokens[i]!);
        else if (parts[i] !== tokens[i]) return undefined;
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

/** Is `subject` a valid concrete publish subject (no wildcards, no empty tokens)? */
export function isValidSubject(subject: string, allowWildcards = false): boolean {
  if (subject.length === 0 || /\s/.test(subject)) return false;
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return false;
    if (t === "*" || t === ">") {
      if (!allowWildcards) return false;
      if (t === ">" && i !== tokens.length - 1) return false;
    } else if (t.includes("*") || t.includes(">")) return false;
  }
  return true;
}
