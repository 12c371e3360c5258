/**
 * The packages' source files and their sizes, shared by `npm run structure`, the structure limits test,
 * the clock-discipline test and the package-graph test: one walk of `packages/<pkg>/src` (tests and
 * declaration files left out) and the issue-19 size measure, files over 500 lines and functions over 80,
 * taken with the TypeScript parser.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";

export const MAX_FILE_LINES = 500;
export const MAX_FUNCTION_LINES = 80;
export const repoRoot = new URL("..", import.meta.url).pathname;

/** The non-test TypeScript sources under `dir`, recursively, in directory order. */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith(".ts") && !name.endsWith(".test.ts") && !name.endsWith(".d.ts")) out.push(p);
  }
  return out;
}

/** The workspace packages (folders of `packages/` with a package.json). */
export function packageNames(): string[] {
  return readdirSync(join(repoRoot, "packages")).filter((p) => {
    try {
      return statSync(join(repoRoot, "packages", p, "package.json")).isFile();
    } catch {
      return false;
    }
  });
}

/** `[where, lines]` of every source file and every function over the limits, largest first. */
export function oversized(): { files: [string, number][]; functions: [string, number][] } {
  const files: [string, number][] = [];
  const functions: [string, number][] = [];
  for (const pkg of packageNames()) {
    for (const file of sourceFiles(join(repoRoot, "packages", pkg, "src"))) {
      const text = readFileSync(file, "utf8");
      const rel = relative(repoRoot, file);
      const lines = text.split("\n").length;
      if (lines > MAX_FILE_LINES) files.push([rel, lines]);
      const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (ts.isFunctionLike(node) && "body" in node && node.body) {
          const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
          const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
          const name = (node as ts.FunctionLikeDeclaration).name?.getText(sf) ?? "(anonymous)";
          if (end - start + 1 > MAX_FUNCTION_LINES)
            functions.push([`${rel}:${start + 1} ${name}`, end - start + 1]);
        }
        ts.forEachChild(node, visit);
      };
      visit(sf);
    }
  }
  const by = (a: [string, number], b: [string, number]) => b[1] - a[1];
  return { files: files.sort(by), functions: functions.sort(by) };
}
