export * from "./policy.js";
export * from "./router.js";
