import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { envelope, LoadReport } from "@sageserve/protocol";

/** Replace (or append) one benchmark's section in docs/benchmarks.md, between markers. */
export function writeSection(id: string, markdown: string): void {
  const path = new URL("../docs/benchmarks.md", import.meta.url);
  const start = `<!-- bench:${id}:start -->`;
  const end = `<!-- bench:${id}:end -->`;
  let doc = existsSync(path)
    ? readFileSync(path, "utf8")
    : "# Benchmarks\n\nWritten by `npm run bench` (each benchmark replaces its own section). Numbers come from one run on the machine named in each section; machines here are noisy (±20–30 %), so compare the ratios measured in the same run, not absolute numbers across runs.\n";
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  doc =
    i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, doc);
}

export function machine(): string {
  return `${cpus().length} × ${cpus()[0]?.model.trim() ?? "cpu"}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export const fmt = (n: number, digits = 1): string =>
  n >= 1000 ? Math.round(n).toLocaleString("en-US") : n.toFixed(digits);

/** Announce `n` serving instances (i0…, nodes n0…) of model "m" in westus to routers, as load reports. */
export function announceInstances(bus: { publish(subject: string, data: unknown): void }, n = 16): void {
  for (let i = 0; i < n; i++)
    bus.publish(
      LoadReport.subject.build({ region: "westus", model: "m", instance: `i${i}` }),
      envelope(LoadReport, {
        ...LoadReport.sample(),
        instanceId: `i${i}`,
        nodeId: `n${i}`,
        model: "m",
        kvCapacityTokens: 200_000,
        atMs: Date.now(),
      }),
    );
}
