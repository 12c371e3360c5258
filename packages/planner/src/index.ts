export * from "./forecast.js";
export * from "./ilp.js";
export * from "./lp.js";
export * from "./snapshot.js";
