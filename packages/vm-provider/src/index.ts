export { LocalProcessBackend, type LocalProcessOptions } from "./local-process.js";
export { type VmBackend, VmProviderActor } from "./provider.js";
