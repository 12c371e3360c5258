export * from "./charts.js";
export * from "./observer.js";
export * from "./page.js";
