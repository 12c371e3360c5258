import { Command, InvalidArgumentError } from "commander";
import { runDemo } from "./demo.js";
import { emulatorCommand } from "./emulator.js";
import { natsAuthCommand } from "./nats-auth.js";
import { nodeAgentCommand } from "./node-agent.js";
import { actorCommand, drainCommand, loadCommand, statusCommand } from "./ops.js";
import { planCommand } from "./plan.js";
import { compareCommand, POLICY_NAMES, simCommand } from "./sim.js";
import { upCommand } from "./up.js";
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

const demoOptions = (c: Command, durationHelp: string): Command =>
  c
    .option("-d, --duration <seconds>", durationHelp, positiveNumber, 10)
    .option("--nodes <n>", "demo nodes to start", positiveNumber, 2)
    .option("--heartbeat-ms <ms>", "heartbeat interval", positiveNumber, 500)
    .option("--seed <n>", "random seed", positiveNumber, 7)
    .option("--json", "print one JSON object per event instead of text");

program
  .command("up")
  .description(
    "Start a whole SageServe cluster on this machine (NATS, dashboard, planner, router, a region agent with " +
      "node agents and engine emulators per region, gateway) and replay a built-in workload through it",
  )
  .option("-d, --duration <seconds>", "stop after this many seconds (0 = until Ctrl-C)", positiveNumber, 0)
  .option("--cluster <file.json>", "cluster description (default: built in; docs/operations.md)")
  .option("--gateway-port <n>", "gateway port (0 = any free port)", positiveInt)
  .option("--dashboard-port <n>", "dashboard port (0 = any free port)", positiveInt)
  .option("--rate <req/s>", "mean request rate of the built-in workload", positiveNumber)
  .option("--no-load", "start the cluster without replaying a workload")
  .option("--log-level <level>", "actor log level (warn by default; info, debug)")
  .option("--state-dir <dir>", "where to keep state: NATS credentials in <dir>/nats-auth", ".sageserve")
  .option("--no-auth", "no NATS credentials or permissions (for a NATS_URL server without auth)")
  .option("--tls", "require TLS on NATS too (a CA and server certificate made with openssl)")
  .option(
    "--nats-cluster <n>",
    "spawn a cluster of n nats-server -js processes (routes on loopback) instead of one; every service gets all n URLs",
    positiveInt,
  )
  .option(
    "--js-replicas <n>",
    "replicas of SAGE_NIW and the KV buckets (default SAGE_JS_REPLICAS, else 3 on a cluster of 3 or more, else 1)",
    positiveInt,
  )
  .option("--json", "print one JSON object per event")
  .action(async (opts) => {
    process.exitCode = await upCommand(opts);
  });

program
  .command("status")
  .description(
    "Regions, models, instances by state, NIW queue depths, the current plan, SLO attainment and services — read from NATS",
  )
  .option("--nats <url>", "NATS server (default: NATS_URL, else nats://127.0.0.1:4222)")
  .option("--nats-creds <dir>", "NATS credentials directory (default: SAGE_NATS_CREDS; docs/security.md)")
  .option("--json", "print the status as JSON")
  .action(async (opts) => {
    process.exitCode = await statusCommand(opts);
  });

program
  .command("drain <node>")
  .description("Drain a node: it takes no new requests, finishes the ones it runs, then stops")
  .option("--nats <url>", "NATS server (default: NATS_URL, else nats://127.0.0.1:4222)")
  .option("--nats-creds <dir>", "NATS credentials directory (default: SAGE_NATS_CREDS; docs/security.md)")
  .option("--reason <text>", "why (kept with the command)")
  .option("--json", "print the node's reply as JSON")
  .action(async (node, opts) => {
    process.exitCode = await drainCommand(node, opts);
  });

program
  .command("load")
  .description(
    "Replay the built-in workload (tiers, regions, token lengths, bursts) against a gateway in real time",
  )
  .requiredOption("--gateway <url>", "gateway base URL, e.g. http://127.0.0.1:8080")
  .option("--rate <req/s>", "mean request rate", positiveNumber)
  .option("-d, --duration <seconds>", "stop after this many seconds (0 = until Ctrl-C)", positiveNumber, 0)
  .option("--wait-ready <seconds>", "wait this long for the gateway to answer /health", positiveNumber, 0)
  .option("--api-key <key>", "send this API key")
  .option("--cluster <file.json>", "cluster description whose regions, models and load settings to use")
  .option("--json", "print the counters as JSON")
  .action(async (opts) => {
    process.exitCode = await loadCommand(opts);
  });

program
  .command("actor <service>")
  .description(
    "Run one service of the cluster description (dashboard, planner, router, region-<id>, gateway): what each compose container runs",
  )
  .option("--nats <url>", "NATS server (default: NATS_URL, else nats://127.0.0.1:4222)")
  .option("--nats-creds <dir>", "NATS credentials directory (default: SAGE_NATS_CREDS; docs/security.md)")
  .option("--cluster <file.json>", "cluster description (default: built in)")
  .option("--host <addr>", "address the gateway/dashboard listen on (0.0.0.0 in a container)")
  .action(async (service, opts) => {
    process.exitCode = await actorCommand(service, opts);
  });

demoOptions(
  program
    .command("demo")
    .description("Run the spine demo on NATS with the wall clock, or in-process on virtual time (--virtual)")
    .option("--virtual", "run on the in-memory bus and the virtual clock (no NATS needed)"),
  "seconds of (real or virtual) time to run",
).action(async (opts) => {
  process.exitCode = await runDemo({ ...opts, clock: opts.virtual ? "virtual" : "wall" });
});

/** Seconds: `90`, `90s`, `30m`, `2h`, `1.5d`. */
function duration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`expected seconds or a time like 90s, 30m, 2h, 1d, got '${v}'`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? "s") as "s"];
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(`expected a non-negative integer, got '${v}'`);
  return n;
}

const simOptions = (c: Command): Command =>
  c
    .requiredOption(
      "-s, --scenario <name|file>",
      "built-in scenario (smoke, day, paper-week, paper-scale), or a file, told apart by content: a trace (JSONL, CSV, " +
        "Azure 2023 CSV), a rate file (CSV: window_start_s,rate_rps,…; ServeGen's layout), a scenario or a " +
        "rate spec (JSON) — docs/simulator.md",
    )
    .option("--seed <n>", "random seed (the same seed gives a byte-identical report.json)", positiveInt, 1)
    .option(
      "--scale <factor>",
      "multiply the request rate (e.g. 0.1, 3): a scenario's or rate file's rate; a trace's as --scale-mode says",
      positiveNumber,
    )
    .option(
      "--scale-mode <mode>",
      "traces: replicate (default; each request scale times on the same time axis, copies between it and the " +
        "next, each its own id; below 1 a seeded thinning) or compress (arrivals at t / scale)",
    )
    .option(
      "--start <time>",
      "keep the workload from this time on, moved to start at 0 (seconds, or 90s, 30m, 2h, 1d; a trace's own times, before --scale)",
      duration,
    )
    .option("--duration <time>", "keep this long from --start (seconds, or 30m, 2h, 1d)", duration)
    .option("--map-model <from=to,…>", "rename models (`*` matches any), e.g. llama2-70b=llama3.1-8b")
    .option("--map-region <from=to,…>", "rename regions, e.g. '*=eastus' puts every request in eastus")
    .option("--map-tier <from=to,…>", "change tiers, e.g. iw-normal=niw (made NIW: a 24 h deadline)")
    .option(
      "--sort-window <time>",
      "traces: let lines arrive up to this late (seconds, or 30s, 5m) and sort them back; default: an out-of-order line is an error naming it",
      duration,
    )
    .option("-o, --out <dir>", "output directory", "sim-out")
    .option(
      "-c, --config <file.json>",
      "simulation settings: gpuTypes, timings, slo, regionAgent (docs/simulator.md)",
    )
    .option(
      "--validate",
      "check every message the actors exchange against its schema (slower; by default the simulator trusts what its own typed actors build — every live boundary always validates)",
    )
    .option("--no-validate", "trust the actors' own messages (the default)")
    .option("--no-progress", "no progress bar")
    .option("--json", "print a JSON summary");

simOptions(
  program
    .command("sim")
    .description(
      "Replay a scenario or trace through the real actors on virtual time; writes report.json, run.json, report.html",
    )
    .requiredOption("-p, --policy <name>", `policy: ${POLICY_NAMES.join(", ")}`)
    .option(
      "--trace-slow <file.jsonl>",
      "write one JSON line per request that missed its TTFT target: model, region, instance, GPU, and where the time went (router, instance queue, prefill, preemptions)",
    ),
).action(async (opts) => {
  process.exitCode = await simCommand(opts.policy, opts);
});

simOptions(
  program
    .command("compare")
    .description(
      "Run several policies on the same scenario and seed; prints a table, writes one combined report",
    )
    .requiredOption("--policies <list>", `comma-separated: ${POLICY_NAMES.join(",")}`),
).action(async (opts) => {
  process.exitCode = await compareCommand(
    String(opts.policies)
      .split(",")
      .map((p) => p.trim())
      .filter(Boolean),
    opts,
  );
});

program
  .command("plan")
  .description(
    "Solve one capacity-planning problem from a JSON snapshot (docs/planner.md) and print the plan",
  )
  .requiredOption(
    "--state <file.json>",
    "planning snapshot: capacity, gpuTypes, supply, demand, current, routes, config",
  )
  .option("--solver <name>", "auto (default), highs or jslp", "auto")
  .option("--time-limit <seconds>", "solver time limit", positiveNumber)
  .option("--json", "print the whole plan as JSON")
  .action(async (opts) => {
    process.exitCode = await planCommand(opts);
  });

program
  .command("emulator")
  .description(
    "Run an engine emulator: a vLLM-compatible OpenAI HTTP server timed by the measured performance model (no GPU)",
  )
  .requiredOption("-m, --model <id>", "model (llama2-70b, bloom-176b, llama3.1-8b, llama3.2-3b)")
  .option("-g, --gpu <type>", "GPU type whose timing to emulate (h100, a100)", "h100")
  .option("-p, --port <n>", "port", positiveInt, 8000)
  .option("--host <addr>", "address to listen on", "127.0.0.1")
  .option("--served-model-name <name>", "the name clients use in `model`")
  .option("--load-ms <ms>", "model load time before /health turns 200", positiveNumber, 0)
  .option("--max-model-len <n>", "context length", positiveInt, 32768)
  .option("--speedup <x>", "run this many times faster than the measured hardware", positiveNumber, 1)
  .option("--kv-tokens <n>", "KV-cache capacity in tokens (default: the GPU type's)", positiveInt)
  .option("--max-num-seqs <n>", "most sequences running at once, as vLLM's flag", positiveInt, 256)
  .option(
    "--scheduling-policy <policy>",
    "fcfs (every request alike, vLLM's default) or priority (a request's `priority` picks its tier: 0 IW-fast, 1 IW-normal, 2+ NIW), as vLLM's flag",
    "fcfs",
  )
  .option("--parent-pid <pid>", "exit when this process is gone (set by a node agent)", positiveInt)
  .action(async (opts) => {
    process.exitCode = await emulatorCommand(opts);
  });

program
  .command("node-agent")
  .description(
    "Run the node agent of this GPU host (NATS_URL; config file plus SAGE_NODE_ID, SAGE_REGION, SAGE_ENGINE_URL, SAGE_MODEL, SAGE_ENGINE_PRIORITY)",
  )
  .option("-c, --config <file.json>", "node agent configuration (docs/deploy.md)")
  .option(
    "--engine-priority <on|off>",
    "send each request's tier as the engine's scheduling priority (vLLM --scheduling-policy priority, SGLang --enable-priority-scheduling); overrides engine.priority and SAGE_ENGINE_PRIORITY",
  )
  .action(async (opts) => {
    process.exitCode = await nodeAgentCommand(opts);
  });

program
  .command("nats-auth")
  .description(
    "Make NATS credentials: an NKey seed per role (<role>.nk, 0600), a nats-server config with their public keys and permissions, optionally TLS certificates (idempotent)",
  )
  .option("-o, --out <dir>", "directory for the seeds and nats-server.conf", "nats-auth")
  .option("--tls", "also make a CA, a server and a client certificate (openssl) and require TLS")
  .option(
    "--tls-host <name>",
    "a name or IP the server certificate is valid for (repeat; default localhost, 127.0.0.1, nats)",
    (v: string, prev: string[] = []) => [...prev, v],
  )
  .option("--tls-verify", "require client certificates (mutual TLS)")
  .option("--store-dir <dir>", "JetStream store directory in the config")
  .option("--listen <host:port>", "client listen address in the config")
  .option("--http-port <n>", "monitoring port in the config", positiveInt)
  .option("--conf-dir <dir>", "also copy nats-server.conf here (no seeds)")
  .option(
    "--service-creds <dir>",
    "also give each service of the cluster <dir>/<service>/ holding only its roles' seeds (compose)",
  )
  .option("--cluster <file.json>", "cluster description whose services --service-creds lists")
  .option(
    "--regions <list>",
    "also a region-agent.<region> and vm-provider.<region> credential per region (comma-separated), narrowed to that region",
  )
  .option(
    "--nodes <list>",
    "also a node-agent.<node> credential per host (comma-separated <node>@<region>), narrowed to that host; the region's agent may command only these",
  )
  .option("--json", "print the files as JSON")
  .action((opts) => {
    process.exitCode = natsAuthCommand(opts);
  });

program
  .command("version")
  .description("Print the version")
  .option("--json", "machine-readable output")
  .action((opts) => {
    console.log(opts.json ? JSON.stringify({ version: VERSION, node: process.version }) : VERSION);
  });

await program.parseAsync(process.argv);
