import { describe, expect, it } from "vitest";
import { postProcessTargets } from "./plan-output.js";

const t = (instances: number, delta: number) => ({ model: "m", region: "r", gpu: "h100", instances, delta });

describe("plan post-processing", () => {
  it("immediate publishes the ILP's targets unchanged", () => {
    expect(postProcessTargets([t(5, 2)], "immediate", new Map())).toEqual([t(5, 2)]);
  });
  it("keep-max never lowers a target below the current allocation; keep-min never raises it", () => {
    expect(postProcessTargets([t(2, -3), t(7, 2)], "keep-max", new Map())).toEqual([t(5, 0), t(7, 2)]);
    expect(postProcessTargets([t(2, -3), t(7, 2)], "keep-min", new Map())).toEqual([t(2, -3), t(5, 0)]);
  });
  it("delay-changes applies a change only when the previous plan pointed the same way", () => {
    const prev = new Map([["m|r|h100", 1]]);
    expect(postProcessTargets([t(6, 2)], "delay-changes", prev)).toEqual([t(6, 2)]);
    expect(postProcessTargets([t(2, -2)], "delay-changes", prev)).toEqual([t(4, 0)]);
    expect(postProcessTargets([t(6, 2)], "delay-changes", new Map())).toEqual([t(4, 0)]);
  });
});
