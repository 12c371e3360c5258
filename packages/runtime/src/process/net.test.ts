import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { freePorts } from "./net.js";

describe("freePorts", () => {
  it("hands out n distinct ports, each bindable once it returns", async () => {
    const ports = await freePorts(64);
    expect(ports).toHaveLength(64);
    expect(new Set(ports).size).toBe(64);
    for (const p of ports.slice(0, 8)) {
      const s = createServer();
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(p, "127.0.0.1", () => resolve());
      });
      await new Promise<void>((r) => s.close(() => r()));
    }
  });
});
