export * from "./forecast.js";
export * from "./ilp.js";
export * from "./lp.js";
export * from "./planner.js";
export * from "./snapshot.js";
