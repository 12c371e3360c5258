import { subjectMatches } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import { createRng } from "./rng.js";
import { SubjectTrie } from "./subject-trie.js";

describe("SubjectTrie", () => {
  it("agrees with the reference matcher on 5,000 random patterns × subjects", () => {
    const rng = createRng(42, "trie");
    const tokens = ["a", "b", "c"];
    const randSubject = (): string => Array.from({ length: rng.int(1, 4) }, () => rng.pick(tokens)).join(".");
    const randPattern = (): string => {
      const n = rng.int(1, 4);
      const parts = Array.from({ length: n }, () => rng.pick([...tokens, "*"]));
      if (rng.next() < 0.3) parts[n - 1] = ">";
      return parts.join(".");
    };
    const patterns = Array.from({ length: 100 }, randPattern);
    const trie = new SubjectTrie<number>();
    patterns.forEach((p, i) => {
      trie.add(p, i);
    });
    for (let k = 0; k < 50; k++) {
      const s = randSubject();
      const want = patterns.flatMap((p, i) => (subjectMatches(p, s) ? [i] : [])).sort((x, y) => x - y);
      expect(
        trie.match(s).sort((x, y) => x - y),
        `${s}`,
      ).toEqual(want);
    }
  });

  it("forgets removed subscriptions and prunes empty branches", () => {
    const trie = new SubjectTrie<string>();
    trie.add("a.*.c", "x");
    trie.add("a.>", "y");
    expect(trie.match("a.b.c").sort()).toEqual(["x", "y"]);
    trie.remove("a.*.c", "x");
    trie.remove("a.>", "y");
    expect(trie.match("a.b.c")).toEqual([]);
    expect(trie.size).toBe(0);
  });
});
