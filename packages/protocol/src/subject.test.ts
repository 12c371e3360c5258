import { describe, expect, it } from "vitest";
import { decodeToken, encodeToken, isValidSubject, subjectMatches, subjectTemplate } from "./subject.js";

describe("subject templates", () => {
  const t = subjectTemplate<"region" | "model" | "instance">("sage.load.{region}.{model}.{instance}");

  it("builds a concrete subject with model names escaped to one token", () => {
    expect(t.build({ region: "westus", model: "llama-3.1-8b", instance: "i0" })).toBe(
      "sage.load.westus.llama-3~2e1-8b.i0",
    );
  });

  it("turns missing params into `*` for subscriptions", () => {
    expect(t.pattern({ region: "westus" })).toBe("sage.load.westus.*.*");
    expect(t.pattern()).toBe("sage.load.*.*.*");
  });

  it("parses params back out of a subject, unescaped", () => {
    const s = t.build({ region: "eu/west", model: "meta-llama/Llama-3.1-8B", instance: "n1-i0" });
    expect(t.parse(s)).toEqual({ region: "eu/west", model: "meta-llama/Llama-3.1-8B", instance: "n1-i0" });
    expect(t.parse("sage.hb.westus.n1")).toBeUndefined();
  });

  it("refuses to build a subject with a param missing, naming it", () => {
    expect(() => t.build({ region: "w", model: "m" } as never)).toThrowError(/\{instance\}/);
  });
});

describe("tokens", () => {
  it("round-trips any string, including non-ASCII and subject metacharacters", () => {
    for (const s of ["plain", "a.b", "a b", "*", ">", "ünï/cödé~", "x~41"]) {
      const tok = encodeToken(s);
      expect(tok).toMatch(/^[A-Za-z0-9_~-]+$/);
      expect(decodeToken(tok)).toBe(s);
    }
  });
});

describe("NATS wildcard semantics", () => {
  it.each([
    ["a.*.c", "a.b.c", true],
    ["a.*.c", "a.b.b.c", false],
    ["a.>", "a.b", true],
    ["a.>", "a.b.c.d", true],
    ["a.>", "a", false],
    ["*", "a", true],
    ["*", "a.b", false],
    ["a.b", "a.b", true],
  ])("%s matches %s: %s", (p, s, want) => {
    expect(subjectMatches(p, s)).toBe(want);
  });

  it("validates publish and subscribe subjects", () => {
    expect(isValidSubject("a.b")).toBe(true);
    expect(isValidSubject("a.*")).toBe(false);
    expect(isValidSubject("a.*", true)).toBe(true);
    expect(isValidSubject("a.>.b", true)).toBe(false);
    expect(isValidSubject("a..b")).toBe(false);
    expect(isValidSubject("a b")).toBe(false);
    expect(isValidSubject("")).toBe(false);
  });
});

describe("memoised subjects", () => {
  it("builds the same subject as the template says for thousands of distinct values (the memo is bounded)", () => {
    const t = subjectTemplate<"region" | "model" | "instance">("sage.load.{region}.{model}.{instance}");
    for (let i = 0; i < 25_000; i++) {
      const values = { region: `r${i % 7}`, model: `m.${i % 3}`, instance: `i${i}` };
      expect(t.build(values)).toBe(`sage.load.r${i % 7}.m~2e${i % 3}.i${i}`);
    }
    expect(t.build({ region: "r1", model: "m.1", instance: "i1" })).toBe("sage.load.r1.m~2e1.i1");
    expect(() => t.build({ region: "r1", model: "m" } as never)).toThrowError(/\{instance\}/);
  });
});
