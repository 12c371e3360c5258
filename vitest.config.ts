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
  },
});
