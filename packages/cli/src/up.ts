import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { envelope, PlanRequest, RegionStatus, SageError, validatePayload } from "@sageserve/protocol";
import {
  type AuthRole,
  generateNatsAuth,
  inboxPrefix,
  type NatsAuthFiles,
  NatsBus,
  type NatsClientAuth,
  type PermissionViolation,
  permissionViolations,
  startNatsCluster,
  startNatsServer,
  WallClock,
} from "@sageserve/runtime";
import {
  type ClusterSpec,
  clusterServices,
  loadClusterSpec,
  type RunningService,
  startService,
} from "./cluster.js";
import { LoadReplayer } from "./load.js";
import { explain } from "./sim.js";

export interface UpOptions {
  /** Seconds to run; 0 = until Ctrl-C. */
  duration: number;
  cluster?: string;
  gatewayPort?: number;
  dashboardPort?: number;
  /** Requests per second of the built-in workload (0 = no load). */
  rate?: number;
  load: boolean;
  json?: boolean;
  logLevel?: string;
  /** NKey credentials and permissions per role (default on; `--no-auth` for a NATS of your own without). */
  auth?: boolean;
  /** Also require TLS: a CA and server certificate in `<state-dir>/nats-auth/tls` (openssl). */
  tls?: boolean;
  /** Where `up` keeps its state: the NATS credentials in `<dir>/nats-auth` (default `.sageserve`). */
  stateDir?: string;
  /** Spawn this many clustered nats-servers instead of one (ignored with NATS_URL). */
  natsCluster?: number;
  /** Replicas of the JetStream assets (`SAGE_JS_REPLICAS`; default by cluster size). */
  jsReplicas?: number;
}

/** Credentials of every role in `files`, as `startService` and the CLI connect with them. */
export function roleAuth(files: NatsAuthFiles): (role: AuthRole) => NatsClientAuth {
  return (role) => ({
    nkeySeedFile: files.seeds[role],
    inboxPrefix: inboxPrefix(role),
    ...(files.tls ? { tls: { caFile: files.tls.caFile } } : {}),
  });
}

/** argv that runs this CLI again (engine processes are `sageserve emulator ...`). */
export function sageserveArgv(): string[] {
  return [process.execPath, fileURLToPath(new URL("../bin/sageserve.js", import.meta.url))];
}

/**
 * `sageserve up`: a whole cluster on this machine — NATS (NATS_URL or a spawned nats-server with
 * JetStream), the dashboard, the planner, a router, a region agent + local VM provider per region
 * (node agents with engine emulator processes), the gateway — then the built-in workload through
 * the gateway. Ctrl-C (or --duration) stops everything, child processes included.
 */
export async function upCommand(o: UpOptions): Promise<number> {
  let spec: ClusterSpec;
  try {
    spec = loadClusterSpec(o.cluster);
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
  spec = {
    ...spec,
    gateway: { ...spec.gateway, ...(o.gatewayPort !== undefined ? { port: o.gatewayPort } : {}) },
    dashboard: { ...spec.dashboard, ...(o.dashboardPort !== undefined ? { port: o.dashboardPort } : {}) },
    load: { ...spec.load, ...(o.rate !== undefined ? { ratePerSecond: o.rate } : {}) },
  };
  const say = (event: string, fields: Record<string, unknown> = {}, text?: string) => {
    if (o.json) console.log(JSON.stringify({ event, ...fields }));
    else console.log(text ?? event);
  };

  /** The spawned NATS: one server or a cluster (none with NATS_URL). */
  let server: { url: string; size: number; logs(): string[]; stop(): Promise<void> } | undefined;
  let natsUrl: string;
  let auth: NatsAuthFiles | undefined;
  try {
    if (o.tls && o.auth === false)
      throw new SageError("CONFIG", "--tls comes with the credentials: drop --no-auth to use it");
    if (o.auth ?? true) {
      // Kept across runs: a NATS_URL server configured with this nats-server.conf keeps working.
      auth = generateNatsAuth(resolve(o.stateDir ?? ".sageserve", "nats-auth"), o.tls ? { tls: true } : {});
    }
    if (o.jsReplicas !== undefined) process.env.SAGE_JS_REPLICAS = String(o.jsReplicas);
    if (process.env.NATS_URL) natsUrl = process.env.NATS_URL;
    else if ((o.natsCluster ?? 1) > 1) {
      const c = await startNatsCluster({ size: o.natsCluster!, ...(auth ? { config: auth.config } : {}) });
      server = {
        url: c.url,
        size: c.servers.length,
        logs: () => c.servers.map((s) => s.log()),
        stop: () => c.stop(),
      };
      natsUrl = c.url;
    } else {
      const s = await startNatsServer(auth ? { config: auth.config } : {});
      server = { url: s.url, size: 1, logs: () => [s.log()], stop: () => s.stop() };
      natsUrl = s.url;
    }
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
  const natsAuth = auth ? roleAuth(auth) : undefined;
  const clock = new WallClock();
  const running: RunningService[] = [];
  let load: LoadReplayer | undefined;
  let violations: PermissionViolation[] = [];
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      say("stopping", {}, "\nstopping: load, gateway, regions (engines), router, planner, dashboard, NATS…");
      await load?.stop(15_000); // let requests in flight finish before the gateway closes
      for (const s of [...running].reverse()) await s.stop();
      clock.cancelAll();
      // Anything refused by the permissions shows in the server's log: report it, it is a bug or an attack.
      violations = server ? server.logs().flatMap(permissionViolations) : [];
      await server?.stop();
    })();
    return stopping;
  };
  let interrupted: () => void = () => {};
  const interruptedP = new Promise<void>((r) => {
    interrupted = r;
  });
  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals > 1) {
      // A second Ctrl-C: leave now. Engines watch this process and exit within a second.
      console.error("forced exit");
      process.exit(130);
    }
    interrupted();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    say(
      "nats",
      {
        url: natsUrl,
        spawned: !!server,
        servers: server?.size ?? null,
        creds: auth?.dir ?? null,
        ca: auth?.tls?.caFile ?? null,
      },
      [
        `NATS            ${natsUrl}${server ? (server.size > 1 ? ` (spawned cluster of ${server.size} nats-servers with JetStream)` : " (spawned nats-server with JetStream)") : " (NATS_URL)"}`,
        auth
          ? `credentials     ${auth.dir} (an NKey per role; nats-server.conf${server ? "" : " — enforced once your NATS_URL server runs with it"})`
          : "credentials     none (--no-auth)",
        ...(auth?.tls ? [`TLS             required; CA ${auth.tls.caFile}`] : []),
      ].join("\n"),
    );
    const deps = {
      natsUrl,
      clock,
      sageserveArgv: sageserveArgv(),
      ...(o.logLevel ? { logLevel: o.logLevel } : {}),
      ...(natsAuth ? { natsAuth } : {}),
    };
    for (const def of clusterServices(spec)) {
      const s = await startService(def, spec, deps);
      running.push(s);
      say(
        "service",
        { name: def.name, role: def.role, url: s.url },
        `started         ${def.name}${s.url ? `  ${s.url}` : ""}`,
      );
      if (signals) break;
    }
    const gateway = running.find((s) => s.def.role === "gateway")?.url;
    const dashboard = running.find((s) => s.def.role === "dashboard")?.url;
    if (!signals) {
      // A first plan right away (then on the planner's schedule), so the dashboard has one to show.
      const bus = await NatsBus.connect({ servers: natsUrl, name: "sageserve-up", ...natsAuth?.("admin") });
      await bus
        .request(
          PlanRequest.subject.build({}),
          envelope(PlanRequest, { requestedBy: "sageserve-up", reason: "cluster start" }),
          { timeoutMs: 30_000 },
        )
        .catch(() => undefined);
      // Load starts once every endpoint serves (the first VMs take a few seconds to boot).
      const readyBy = Date.now() + 90_000;
      let waiting: string[] = [];
      while (!signals && Date.now() < readyBy) {
        const regions = await bus.kvEntries("sage-regions").catch(() => new Map<string, unknown>());
        waiting = spec.regions.flatMap((r) => {
          const st = validatePayload(RegionStatus, regions.get(r.id));
          const serving = (m: string) =>
            st.ok ? (st.value.endpoints.find((e) => e.model === m)?.instances.serving ?? 0) : 0;
          return r.models.filter((m) => serving(m) === 0).map((m) => `${r.id}/${m}`);
        });
        if (waiting.length === 0) break;
        await new Promise((r) => setTimeout(r, 500));
      }
      if (waiting.length) say("not-ready", { waiting }, `still booting after 90 s: ${waiting.join(", ")}`);
      await bus.close();
      const env = `${auth ? ` SAGE_NATS_CREDS=${auth.dir}` : ""}${auth?.tls ? ` NATS_CA=${auth.tls.caFile}` : ""}`;
      say(
        "ready",
        { gateway, dashboard, nats: natsUrl, creds: auth?.dir ?? null, ca: auth?.tls?.caFile ?? null },
        [
          "",
          `gateway         ${gateway}/v1  (OpenAI API; x-sage-tier: fast|normal|batch, x-sage-region: ${spec.regions.map((r) => r.id).join("|")})`,
          `dashboard       ${dashboard}`,
          `try             curl -s ${gateway}/v1/completions -H 'content-type: application/json' -d '{"model":"${spec.regions[0]!.models[0]}","prompt":"hello","max_tokens":8}'`,
          `inspect         NATS_URL=${natsUrl}${env} npx sageserve status`,
          `                nats --server ${natsUrl}${auth ? ` --nkey ${auth.seeds.operator} --inbox-prefix _INBOX_operator` : ""}${auth?.tls ? ` --tlsca ${auth.tls.caFile}` : ""} micro ls   ·   … sub 'sage.>'`,
          o.load && spec.load.ratePerSecond > 0
            ? `load            replaying the built-in workload at ~${spec.load.ratePerSecond} req/s through the gateway`
            : "load            none (--no-load)",
          o.duration > 0 ? `stopping in ${o.duration} s (or Ctrl-C)` : "Ctrl-C to stop",
        ].join("\n"),
      );
      if (o.load && gateway) {
        load = new LoadReplayer(gateway, spec, {});
        load.start();
      }
      const progress = setInterval(() => {
        if (!load) return;
        const s = load.stats;
        say(
          "load",
          { ...s },
          `requests        sent ${s.sent} · ok ${s.ok} · batch queued ${s.queued} · failed ${s.failed} · in flight ${s.inFlight}`,
        );
      }, 10_000);
      progress.unref();
      // The --duration timer is cleared when Ctrl-C comes first: left armed, it kept the process alive
      // after "stopped" until the duration ran out.
      let durationTimer: NodeJS.Timeout | undefined;
      await Promise.race([
        interruptedP,
        ...(o.duration > 0
          ? [
              new Promise((r) => {
                durationTimer = setTimeout(r, o.duration * 1000);
              }),
            ]
          : []),
      ]);
      clearTimeout(durationTimer);
      clearInterval(progress);
    }
  } catch (e) {
    console.error(explain(e));
    await shutdown();
    return 1;
  }
  await shutdown();
  const s = load?.stats;
  for (const v of violations)
    say("nats-violation", { ...v }, `NATS refused: ${v.connection} may not ${v.kind} '${v.subject}'`);
  say(
    "stopped",
    { load: s ?? null },
    s
      ? `stopped: ${s.sent} requests sent, ${s.ok} ok, ${s.queued} batch queued, ${s.failed} failed`
      : "stopped",
  );
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  return 0;
}
