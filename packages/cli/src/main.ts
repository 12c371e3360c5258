import { Command, InvalidArgumentError } from "commander";
import { runDemo } from "./demo.js";
import { VERSION } from "./version.js";

// `sageserve demo | head` must end quietly, not with an EPIPE stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

const positiveNumber = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`expected a non-negative number, got '${v}'`);
  return n;
};

const program = new Command()
  .name("sageserve")
  .description(
    "SageServe: one shared GPU pool for interactive and deadline-bound batch LLM traffic across regions",
  )
  .version(VERSION, "-V, --version");

program
  .command("up")
  .description(
    "Start a local SageServe on NATS (NATS_URL, or a spawned nats-server) and show the actors talking. " +
      "Today: the spine demo — node and region actors exchanging heartbeats, load and commands.",
  )
  .option("-d, --duration <seconds>", "stop after this many seconds (0 = until Ctrl-C)", positiveNumber, 10)
  .option("--nodes <n>", "demo nodes to start", positiveNumber, 2)
  .option("--heartbeat-ms <ms>", "heartbeat interval", positiveNumber, 500)
  .option("--seed <n>", "random seed", positiveNumber, 7)
  .option("--json", "print one JSON object per event instead of text")
  .action(async (opts) => {
    process.exitCode = await runDemo({ ...opts, clock: "wall" });
  });

program
  .command("demo")
  .description("Run the spine demo on NATS with the wall clock, or in-process on virtual time (--virtual)")
  .option("--virtual", "run on the in-memory bus and the virtual clock (no NATS needed)")
  .option("-d, --duration <seconds>", "seconds of (real or virtual) time to run", positiveNumber, 10)
  .option("--nodes <n>", "demo nodes to start", positiveNumber, 2)
  .option("--heartbeat-ms <ms>", "heartbeat interval", positiveNumber, 500)
  .option("--seed <n>", "random seed", positiveNumber, 7)
  .option("--json", "print one JSON object per event instead of text")
  .action(async (opts) => {
    process.exitCode = await runDemo({ ...opts, clock: opts.virtual ? "virtual" : "wall" });
  });

program
  .command("version")
  .description("Print the version")
  .option("--json", "machine-readable output")
  .action((opts) => {
    console.log(opts.json ? JSON.stringify({ version: VERSION, node: process.version }) : VERSION);
  });

await program.parseAsync(process.argv);
