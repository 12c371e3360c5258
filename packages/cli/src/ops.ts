import type { ClusterSummary } from "@sageserve/dashboard";
import { type AuthRole, NatsBus, natsAuthFromEnv } from "@sageserve/nats";
import {
  envelope,
  NodeCommand,
  type Payload,
  Plan,
  RegionStatus,
  TIERS,
  validatePayload,
  validateReply,
} from "@sageserve/protocol";
import { WallClock } from "@sageserve/runtime";
import { clusterServices, loadClusterSpec } from "./cluster.js";
import { LoadReplayer } from "./load.js";
import { startService } from "./services.js";
import { explain } from "./sim.js";
import { sageserveArgv } from "./up.js";

const natsUrl = (o: { nats?: string }): string => o.nats ?? process.env.NATS_URL ?? "nats://127.0.0.1:4222";

/** Credentials of `role`: `--nats-creds <dir>` or SAGE_NATS_CREDS (`<dir>/<role>.nk`), else NATS_NKEY; TLS from NATS_CA/CERT/KEY. */
const natsAuth = (o: { natsCreds?: string }, role: AuthRole) =>
  natsAuthFromEnv(role, o.natsCreds ? { ...process.env, SAGE_NATS_CREDS: o.natsCreds } : process.env);

export interface ClusterStatus {
  nats: string;
  atMs: number;
  regions: Payload<typeof RegionStatus>[];
  plan: Payload<typeof Plan> | null;
  /** The dashboard's summary (SLO attainment, latency, GPU-hours); null when no dashboard runs. */
  observer: ClusterSummary | null;
  nodes: { nodeId: string; region: string; state: string; model: string; atMs: number }[];
  services: { name: string; id: string; metadata: Record<string, string> }[];
}

/** Everything `status` shows, read from NATS: KV buckets and service discovery. */
export async function readStatus(bus: NatsBus, nats: string): Promise<ClusterStatus> {
  const [regions, plan, observer, nodes, services] = await Promise.all([
    bus.kvEntries("sage-regions"),
    bus.kvGet("sage-plans", "latest").catch(() => undefined),
    bus.kvGet("sage-observer", "summary").catch(() => undefined),
    bus.kvEntries("sage-nodes"),
    bus.discover({ timeoutMs: 1_000 }),
  ]);
  const regionList: Payload<typeof RegionStatus>[] = [];
  for (const v of regions.values()) {
    const r = validatePayload(RegionStatus, v);
    if (r.ok) regionList.push(r.value);
  }
  const p = plan === undefined ? undefined : validatePayload(Plan, plan);
  return {
    nats,
    atMs: Date.now(),
    regions: regionList.sort((a, b) => a.region.localeCompare(b.region)),
    plan: p?.ok ? p.value : null,
    observer: (observer as ClusterSummary | undefined) ?? null,
    nodes: [...nodes.values()] as ClusterStatus["nodes"],
    services: services
      .map((s) => ({ name: s.name, id: s.id, metadata: s.metadata }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id)),
  };
}

const pct = (x: number | null | undefined) => (x == null ? "–" : `${(100 * x).toFixed(2)} %`);
const time = (ms: number) => new Date(ms).toISOString().slice(11, 19);

export function formatStatus(s: ClusterStatus): string {
  const out: string[] = [`SageServe status — NATS ${s.nats} — ${new Date(s.atMs).toISOString()}`, ""];
  out.push(
    "regions (instances by state, serving KV utilisation, NIW queue; under a plan, the instances measured demand needs)",
  );
  if (s.regions.length === 0) out.push("  none reporting (no region agent running?)");
  for (const r of s.regions) {
    for (const e of r.endpoints) {
      const inst = Object.entries(e.instances)
        .map(([k, n]) => `${k} ${n}`)
        .join(", ");
      out.push(
        `  ${r.region.padEnd(12)} ${e.model.padEnd(14)} ${(inst || "none").padEnd(28)} KV ${pct(e.memoryUtilization).padStart(8)}   NIW queued ${e.niwQueueDepth}${e.demandNeed !== undefined ? `   demand needs ${e.demandNeed}` : ""}`,
      );
    }
  }
  out.push("");
  if (s.plan) {
    const p = s.plan;
    out.push(
      `plan ${p.planId} (${p.strategy}), window ${time(p.windowStartMs)}–${time(p.windowEndMs)} UTC, solver ${p.solver.status} in ${Math.round(p.solver.solveMs)} ms`,
    );
    for (const t of p.targets)
      out.push(
        `  ${t.region.padEnd(12)} ${t.model.padEnd(14)} ${t.gpuType.padEnd(6)} ${t.instances} (${t.delta >= 0 ? "+" : ""}${t.delta})`,
      );
    if (p.targets.length === 0) out.push("  no changes: the current allocation meets the forecast");
    for (const n of p.notes.slice(0, 5)) out.push(`  note: ${n}`);
  } else out.push("plan: none yet");
  out.push("");
  if (s.observer) {
    const o = s.observer;
    out.push(`SLO attainment and latency (since ${time(o.startedAtMs)} UTC)`);
    for (const t of TIERS) {
      const v = o.tiers[t];
      const lat = v.ttftMs ? `TTFT p50/p99 ${v.ttftMs.p50}/${v.ttftMs.p99} ms` : "no requests yet";
      // A dashboard older than the feasibility fields leaves them out.
      const feasible = v.infeasible
        ? `; ${v.infeasible} infeasible (${pct(v.infeasibleShare)}), ${pct(v.attainmentFeasible)} over feasible`
        : "";
      out.push(
        `  ${t.padEnd(10)} ${pct(v.attainment).padStart(9)}  ${String(v.completed).padStart(7)} done, ${v.failed} failed, ${lat}${feasible}${v.attainmentRecent == null ? "" : `; last 5 min ${pct(v.attainmentRecent)}`}${apart(v)}`,
      );
    }
    if (o.feasibilityJudged === false)
      out.push("SLO feasibility: not judged (the dashboard has no performance model)");
    else if (o.feasibilityJudged) {
      const beyond = Object.entries(o.beyondProfile ?? {});
      out.push(
        `prompts beyond the measured profile: ${beyond.length ? beyond.map(([m, n]) => `${m} ${n}`).join(", ") : "none"}`,
      );
    }
    out.push(`GPU-hours so far: ${o.gpuHours.toFixed(2)}`);
  } else out.push("SLO attainment: unknown (no dashboard running to observe requests)");
  out.push("");
  out.push(`nodes alive: ${s.nodes.length} (KV sage-nodes; \`sageserve drain <node>\` takes one out)`);
  for (const n of [...s.nodes].sort((a, b) => a.nodeId.localeCompare(b.nodeId)))
    out.push(`  ${n.nodeId.padEnd(24)} ${n.region.padEnd(12)} ${n.model.padEnd(14)} ${n.state}`);
  const byName = new Map<string, number>();
  for (const sv of s.services) byName.set(sv.name, (byName.get(sv.name) ?? 0) + 1);
  out.push(`services: ${[...byName].map(([n, c]) => (c > 1 ? `${n}×${c}` : n)).join(", ") || "none"}`);
  return out.join("\n");
}

/** Cancelled and rejected requests, counted apart from the SLO (absent from older dashboards). */
function apart(v: { cancelled?: number; rejected?: number }): string {
  const parts = [
    v.cancelled ? `${v.cancelled} cancelled by the client` : "",
    v.rejected ? `${v.rejected} rejected as invalid` : "",
  ].filter(Boolean);
  return parts.length ? `; not judged: ${parts.join(", ")}` : "";
}

/** Run a CLI command on its own NATS connection: any error is printed (exit 2), the connection closed. */
async function withNats(
  o: { nats?: string; natsCreds?: string },
  name: string,
  role: AuthRole,
  f: (bus: NatsBus, url: string) => Promise<number>,
): Promise<number> {
  const url = natsUrl(o);
  let bus: NatsBus | undefined;
  try {
    bus = await NatsBus.connect({ servers: url, name: `sageserve-${name}`, ...natsAuth(o, role) });
    return await f(bus, url);
  } catch (e) {
    console.error(explain(e));
    return 2;
  } finally {
    await bus?.close();
  }
}

export function statusCommand(o: { nats?: string; natsCreds?: string; json?: boolean }): Promise<number> {
  return withNats(o, "status", "operator", async (bus, url) => {
    const s = await readStatus(bus, url);
    console.log(o.json ? JSON.stringify(s, null, 2) : formatStatus(s));
    return 0;
  });
}

/** `drain <node>`: the node stops taking requests, finishes what it runs, then stops. */
export function drainCommand(
  node: string,
  o: { nats?: string; natsCreds?: string; json?: boolean; reason?: string },
): Promise<number> {
  return withNats(o, "drain", "admin", async (bus) => {
    const known = await bus.kvEntries("sage-nodes");
    if (!known.has(node)) {
      const names = [...known.keys()];
      console.error(
        `unknown node '${node}': not alive in KV sage-nodes (alive: ${names.length ? names.join(", ") : "none"})`,
      );
      return 2;
    }
    const commandId = `cli-drain-${Date.now().toString(36)}`;
    const m = await bus.request(
      NodeCommand.subject.build({ node }),
      envelope(NodeCommand, {
        commandId,
        action: "drain",
        reason: o.reason ?? "operator: sageserve drain",
        issuedAtMs: Date.now(),
      }),
      { timeoutMs: 10_000 },
    );
    const d = m.data();
    const r = d.ok ? validateReply(NodeCommand, d.value) : d;
    if (!r.ok) {
      console.error(explain(r.error));
      return 1;
    }
    if (o.json) console.log(JSON.stringify({ node, ...r.value }));
    else
      console.log(
        r.value.accepted
          ? r.value.state === "draining"
            ? `${node}: draining; it finishes its requests, then stops`
            : `${node}: drained at once (no request in flight), now ${r.value.state ?? "stopped"}`
          : `${node}: refused: ${r.value.message ?? "no reason given"}`,
      );
    return r.value.accepted ? 0 : 1;
  });
}

/** `actor <service>`: one service of the cluster description in this process (a container). */
export async function actorCommand(
  name: string,
  o: { nats?: string; natsCreds?: string; cluster?: string; host?: string },
): Promise<number> {
  try {
    const spec = loadClusterSpec(o.cluster);
    if (o.host) {
      spec.gateway = { ...spec.gateway, host: o.host };
      spec.dashboard = { ...spec.dashboard, host: o.host };
    }
    const defs = clusterServices(spec);
    const def = defs.find((d) => d.name === name);
    if (!def) {
      console.error(`unknown service '${name}' (services: ${defs.map((d) => d.name).join(", ")})`);
      return 2;
    }
    const clock = new WallClock();
    const s = await startService(def, spec, {
      natsUrl: natsUrl(o),
      clock,
      sageserveArgv: sageserveArgv(),
      // Each actor of the service connects as its own role, from `<creds>/<role>.nk` (NATS_NKEY suits
      // single-role services only); TLS from NATS_CA/NATS_CERT/NATS_KEY. Nothing set: no credentials.
      natsAuth: (role: AuthRole) => natsAuth(o, role),
    });
    console.log(`${def.name} running on ${natsUrl(o)}${s.url ? `, ${s.url}` : ""}`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
    });
    await s.stop();
    clock.cancelAll();
    return 0;
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
}

/** `load`: the built-in workload against a gateway (compose's `load` service; any running cluster). */
export async function loadCommand(o: {
  gateway: string;
  rate?: number;
  duration: number;
  waitReady: number;
  apiKey?: string;
  cluster?: string;
  json?: boolean;
}): Promise<number> {
  try {
    const spec = loadClusterSpec(o.cluster);
    if (o.rate !== undefined) spec.load = { ...spec.load, ratePerSecond: o.rate };
    const until = Date.now() + o.waitReady * 1000;
    for (;;) {
      const ok = await fetch(`${o.gateway}/health`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) break;
      if (Date.now() > until) {
        console.error(`gateway ${o.gateway} not reachable after ${o.waitReady} s`);
        return 2;
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
    const load = new LoadReplayer(o.gateway, spec, o.apiKey ? { apiKey: o.apiKey } : {});
    load.start();
    const print = () =>
      console.log(
        o.json
          ? JSON.stringify(load.stats)
          : `sent ${load.stats.sent} · ok ${load.stats.ok} · batch queued ${load.stats.queued} · failed ${load.stats.failed} · in flight ${load.stats.inFlight}`,
      );
    const tick = setInterval(print, 10_000);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
      if (o.duration > 0) setTimeout(resolve, o.duration * 1000).unref();
    });
    clearInterval(tick);
    await load.stop();
    print();
    return load.stats.failed > 0 ? 1 : 0;
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
}
