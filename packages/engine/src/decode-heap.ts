/**
 * The decoding requests ordered by the iteration of their last token: the Instance's next finish is its
 * top. Its own module because it is a self-contained data structure tuned for the hot path (flat arrays).
 */
import type { Seq } from "./seq.js";

/**
 * Min-heap of decoding requests by the iteration of their last token, with the request's version when
 * pushed (an entry whose request moved on is stale). Keys and versions sit in flat arrays, so sifting
 * reads no request object; ties break as the object heap this replaced did (same pops, same bytes).
 */
export class DecodeHeap {
  private keys = new Float64Array(64);
  private versions = new Float64Array(64);
  private seqs: (Seq | undefined)[] = [];
  size = 0;

  topKey(): number {
    return this.keys[0]!;
  }

  topVersion(): number {
    return this.versions[0]!;
  }

  top(): Seq {
    return this.seqs[0]!;
  }

  push(key: number, seq: Seq, version: number): void {
    if (this.size === this.keys.length) {
      const k = new Float64Array(2 * this.size);
      k.set(this.keys);
      this.keys = k;
      const v = new Float64Array(2 * this.size);
      v.set(this.versions);
      this.versions = v;
    }
    const keys = this.keys;
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (keys[p]! <= key) break;
      this.move(i, p);
      i = p;
    }
    this.place(i, key, version, seq);
  }

  private move(to: number, from: number): void {
    this.keys[to] = this.keys[from]!;
    this.versions[to] = this.versions[from]!;
    this.seqs[to] = this.seqs[from];
  }

  private place(i: number, key: number, version: number, seq: Seq | undefined): void {
    this.keys[i] = key;
    this.versions[i] = version;
    this.seqs[i] = seq;
  }

  /** Remove and return the top (the heap is not empty). */
  pop(): Seq {
    const keys = this.keys;
    const top = this.seqs[0]!;
    const n = --this.size;
    if (n > 0) {
      const lk = keys[n]!;
      const lv = this.versions[n]!;
      const ls = this.seqs[n];
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && keys[r]! < keys[l]! ? r : l;
        if (keys[c]! >= lk) break;
        this.move(i, c);
        i = c;
      }
      this.place(i, lk, lv, ls);
    }
    this.seqs[n] = undefined;
    return top;
  }

  clear(): void {
    this.size = 0;
    this.seqs.length = 0;
  }
}
