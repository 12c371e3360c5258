import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

// Workspace packages export a "source" condition so tests run against src/ without a build.
export default defineConfig({
  ssr: { resolve: { conditions: ["source", ...defaultServerConditions] } },
  resolve: { conditions: ["source"] },
  test: {
    include: ["packages/*/src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // One file at a time: the live-NATS conformance tests check real timer behaviour, which a
    // CPU-heavy simulation file running beside them on a 2-core machine would disturb.
    fileParallelism: false,
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
