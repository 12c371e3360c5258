export * from "./catalog.js";
export * from "./perf/builtin.js";
export * from "./perf/fit.js";
export * from "./perf/model.js";
export * from "./workload/index.js";
