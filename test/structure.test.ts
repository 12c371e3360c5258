/**
 * The size limits of issue 19 on the packages' sources: no file over 500 lines, no function over 80
 * (`npm run structure` lists the offenders). Measured with the TypeScript parser, tests excluded.
 */
import { describe, expect, it } from "vitest";
import { MAX_FILE_LINES, MAX_FUNCTION_LINES, oversized, packageNames } from "../scripts/source-tree.js";

describe("source structure", () => {
  const { files, functions } = oversized();
  it(`no source file is over ${MAX_FILE_LINES} lines`, () => {
    expect(packageNames().length).toBeGreaterThan(10);
    expect(files).toEqual([]);
  });
  it(`no function is over ${MAX_FUNCTION_LINES} lines`, () => {
    expect(functions).toEqual([]);
  });
});
