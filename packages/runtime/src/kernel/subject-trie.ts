/**
 * Subscription index with NATS wildcard semantics (`*` one token, `>` the rest,
 * at least one token). Lookups walk the subject's tokens once instead of testing
 * every pattern, which keeps the in-memory bus fast with thousands of subscriptions.
 */
interface Node<T> {
  children: Map<string, Node<T>>;
  star: Node<T> | undefined;
  tail: Set<T> | undefined; // subscribers of `prefix.>`
  here: Set<T> | undefined; // subscribers ending exactly at this node
}

const node = <T>(): Node<T> => ({ children: new Map(), star: undefined, tail: undefined, here: undefined });

export class SubjectTrie<T> {
  private readonly root: Node<T> = node();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(pattern: string, value: T): void {
    const tokens = pattern.split(".");
    let n = this.root;
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t === ">") {
        n.tail ??= new Set();
        n.tail.add(value);
        this.count++;
        return;
      }
      if (t === "*") {
        n.star ??= node();
        n = n.star;
      } else {
        let c = n.children.get(t);
        if (!c) {
          c = node();
          n.children.set(t, c);
        }
        n = c;
      }
    }
    n.here ??= new Set();
    n.here.add(value);
    this.count++;
  }

  remove(pattern: string, value: T): void {
    const tokens = pattern.split(".");
    const path: [Node<T>, string][] = [];
    let n: Node<T> | undefined = this.root;
    for (const t of tokens) {
      if (t === ">") {
        if (n.tail?.delete(value)) this.count--;
        this.prune(path, n);
        return;
      }
      path.push([n, t]);
      n = t === "*" ? n.star : n.children.get(t);
      if (!n) return;
    }
    if (n.here?.delete(value)) this.count--;
    this.prune(path, n);
  }

  /** Every value whose pattern matches the concrete subject. */
  match(subject: string, out: T[] = []): T[] {
    this.walk(this.root, subject.split("."), 0, out);
    return out;
  }

  private walk(n: Node<T>, tokens: string[], i: number, out: T[]): void {
    if (i < tokens.length && n.tail) for (const v of n.tail) out.push(v);
    if (i === tokens.length) {
      if (n.here) for (const v of n.here) out.push(v);
      return;
    }
    const c = n.children.get(tokens[i]!);
    if (c) this.walk(c, tokens, i + 1, out);
    if (n.star) this.walk(n.star, tokens, i + 1, out);
  }

  private prune(path: [Node<T>, string][], leaf: Node<T>): void {
    let n = leaf;
    for (let i = path.length - 1; i >= 0; i--) {
      if (n.children.size || n.star || n.tail?.size || n.here?.size) return;
      const [parent, t] = path[i]!;
      if (t === "*") parent.star = undefined;
      else parent.children.delete(t);
      n = parent;
    }
  }
}
