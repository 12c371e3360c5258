/**
 * `npm run structure`: the source files over 500 lines and the functions over 80 lines in
 * `packages/*\/src` (tests excluded) — the size limits of issue 19, measured with the TypeScript parser
 * (`scripts/source-tree.ts`; `test/structure.test.ts` holds the code to them).
 */
import { MAX_FILE_LINES, MAX_FUNCTION_LINES, oversized } from "./source-tree.js";

const { files, functions } = oversized();
console.log(`files over ${MAX_FILE_LINES} lines: ${files.length}`);
for (const [f, n] of files) console.log(`  ${String(n).padStart(5)}  ${f}`);
console.log(`functions over ${MAX_FUNCTION_LINES} lines: ${functions.length}`);
for (const [f, n] of functions) console.log(`  ${String(n).padStart(5)}  ${f}`);
