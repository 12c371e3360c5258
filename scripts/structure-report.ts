/**
 * `npm run structure`: the source files over 500 lines and the functions over 80 lines in
 * `packages/*\/src` (tests excluded) — the size limits of issue 19, measured with the TypeScript parser.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

const MAX_FILE = 500;
const MAX_FUNCTION = 80;
const root = new URL("..", import.meta.url).pathname;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts") && !p.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

const files: [string, number][] = [];
const functions: [string, number][] = [];
for (const pkg of readdirSync(join(root, "packages"))) {
  const src = join(root, "packages", pkg, "src");
  try {
    statSync(src);
  } catch {
    continue;
  }
  for (const file of sources(src)) {
    const text = readFileSync(file, "utf8");
    const rel = relative(root, file);
    const lines = text.split("\n").length;
    if (lines > MAX_FILE) files.push([rel, lines]);
    const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && "body" in node && node.body) {
        const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
        const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
        const name = (node as ts.FunctionLikeDeclaration).name?.getText(sf) ?? "(anonymous)";
        if (end - start + 1 > MAX_FUNCTION) functions.push([`${rel}:${start + 1} ${name}`, end - start + 1]);
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
}
const by = (a: [string, number], b: [string, number]) => b[1] - a[1];
console.log(`files over ${MAX_FILE} lines: ${files.length}`);
for (const [f, n] of files.sort(by)) console.log(`  ${String(n).padStart(5)}  ${f}`);
console.log(`functions over ${MAX_FUNCTION} lines: ${functions.length}`);
for (const [f, n] of functions.sort(by)) console.log(`  ${String(n).padStart(5)}  ${f}`);
