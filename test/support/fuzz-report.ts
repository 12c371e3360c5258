import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

/**
 * The fuzz summary: printed by every fuzz test file, and merged into `docs/results/fuzz.json` (one
 * key per file) only when FUZZ_REPORT=1, so ordinary test runs leave the tree clean.
 * `FUZZ_REPORT_PATH` writes it elsewhere.
 */
export function writeFuzzReport(section: string, data: unknown): string | undefined {
  if (process.env.FUZZ_REPORT !== "1") return undefined;
  const path = resolve(process.env.FUZZ_REPORT_PATH ?? "docs/results/fuzz.json");
  let doc: Record<string, unknown> = {};
  try {
    doc = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch {
    // first section written
  }
  doc[section] = data;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(doc, null, 2)}\n`);
  return path;
}

/** A fixed-width table: first column left-aligned, the others right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  "))
    .join("\n");
}
