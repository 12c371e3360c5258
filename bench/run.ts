// `npm run bench`: every benchmark under bench/, each writing its section of docs/benchmarks.md.
await import("./bus.js");
await import("./engine.js");
await import("./sim.js");
await import("./trace.js");
await import("./planner.js");
await import("./gateway.js");
await import("./cancel.js");
await import("./batch.js");
await import("./router.js");
await import("./routing-latency.js");
await import("./load.js");
await import("./nats-cluster.js");
