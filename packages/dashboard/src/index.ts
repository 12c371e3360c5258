export * from "./observer.js";
export * from "./page.js";
