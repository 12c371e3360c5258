import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import type { Rng } from "./ports.js";

/** FNV-1a, to derive independent per-stream seeds from one run seed. */
function hash32(s: string, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // murmur3 finaliser: nearby stream names must give unrelated seeds.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Seeded random stream (xoroshiro128+, from pure-rand). */
export function createRng(seed: number, stream = ""): Rng {
  const gen = xoroshiro128plus(hash32(stream, seed | 0));
  // xoroshiro's first outputs still echo the seed's structure; discard a few.
  for (let i = 0; i < 16; i++) gen.next();
  const next = (): number => {
    // 53 random bits from two 32-bit draws, like Math.random's precision.
    const hi = gen.next() >>> 5;
    const lo = gen.next() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    exponential: (mean) => -Math.log(1 - next()) * mean,
    pick: <T>(items: readonly T[]): T => {
      if (items.length === 0) throw new RangeError("pick from an empty list");
      return items[Math.floor(next() * items.length)] as T;
    },
  };
}
