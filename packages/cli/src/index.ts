export { type DemoOptions, runDemo } from "./demo.js";
export { VERSION } from "./version.js";
