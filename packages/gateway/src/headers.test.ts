import { describe, expect, it } from "vitest";
import { regionOf, tierOf } from "./headers.js";

describe("tier and region headers", () => {
  it("takes the header's tier, else the key's, else fast", () => {
    expect(tierOf("batch", "normal")).toEqual({ tier: "niw", name: "batch" });
    expect(tierOf(undefined, "normal")).toEqual({ tier: "iw-normal", name: "normal" });
    expect(tierOf(undefined, undefined)).toEqual({ tier: "iw-fast", name: "fast" });
    expect(tierOf(["normal", "fast"], undefined)).toEqual({ tier: "iw-normal", name: "normal" });
  });

  it("refuses unknown tiers, prototype names included", () => {
    for (const t of ["urgent", "FAST", "constructor", "__proto__", ""])
      expect(tierOf(t, undefined), t).toMatchObject({
        status: 400,
        code: "invalid_tier",
        param: "x-sage-tier",
      });
  });

  it("takes the regions this gateway serves and names them when refusing another", () => {
    expect(regionOf(undefined, "westus", ["eastus"])).toBe("westus");
    expect(regionOf("eastus", "westus", ["eastus"])).toBe("eastus");
    expect(regionOf("mars", "westus", ["eastus"])).toMatchObject({
      status: 400,
      code: "invalid_region",
      message: expect.stringContaining("westus, eastus"),
    });
  });
});
