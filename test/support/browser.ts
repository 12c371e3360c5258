import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";
import { PNG } from "pngjs";

/** Debian's Chromium (scripts/setup.sh --with-test-tools installs it); CHROMIUM_BIN overrides. */
export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_BIN, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  const found = candidates.find((p): p is string => !!p && existsSync(p));
  if (!found)
    throw new Error(
      "No Chromium for the headless-browser tests: run `bash scripts/setup.sh --with-test-tools` (apt: chromium) or set CHROMIUM_BIN",
    );
  return found;
}

/** Debian's Chromium, headless and unsandboxed (we run as root in CI), driven by playwright-core. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: ["--headless", "--no-sandbox", "--disable-gpu"],
  });
}

const hex = (c: string): [number, number, number] => [
  Number.parseInt(c.slice(1, 3), 16),
  Number.parseInt(c.slice(3, 5), 16),
  Number.parseInt(c.slice(5, 7), 16),
];

/**
 * Pixels of a PNG screenshot within `tolerance` of any of `colours` — the chart lines. A page whose
 * charts drew no data has (nearly) none: axes and text are grey/black.
 */
export function countColouredPixels(png: Buffer, colours: string[], tolerance = 40): number {
  const img = PNG.sync.read(png);
  const targets = colours.map(hex);
  let n = 0;
  for (let i = 0; i < img.data.length; i += 4) {
    const r = img.data[i]!;
    const g = img.data[i + 1]!;
    const b = img.data[i + 2]!;
    for (const [tr, tg, tb] of targets) {
      if (Math.abs(r - tr) + Math.abs(g - tg) + Math.abs(b - tb) <= tolerance) {
        n++;
        break;
      }
    }
  }
  return n;
}
