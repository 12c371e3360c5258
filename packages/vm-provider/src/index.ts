export * from "./local-process.js";
export * from "./provider.js";
