import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  countSlo,
  DEFAULT_SLO_TTFT_MS,
  emptySloCounts,
  Heartbeat,
  type InstanceState,
  judgedForSlo,
  LoadReport,
  metSlo,
  PAID_STATES,
  type Payload,
  Plan,
  type PromptTiming,
  promptVerdict,
  RegionStatus,
  RequestDone,
  type SloCounts,
  sloRates,
  TIERS,
  type Tier,
  tripleKey,
  validatePayload,
} from "@sageserve/protocol";
import { Actor, type ActorContext, closeServer, listenUrl } from "@sageserve/runtime";
import { renderDashboardHtml } from "./page.js";
import { RecentSlo } from "./recent.js";

/** The window of the recent SLO attainment (`TierSummary.attainmentRecent`). */
export const RECENT_SLO_MS = 5 * 60_000;

export interface DashboardOptions {
  /** HTTP port (0 = any free one) and address. */
  port?: number;
  host?: string;
  /** A point of every time series this often (default 2 s). */
  sampleMs?: number;
  /** Points kept (default 1,800: an hour at 2 s). */
  maxPoints?: number;
  /** Instances whose reports stop for this long leave the view (default 15 s). */
  staleAfterMs?: number;
  /** Latency percentiles over each tier's last N requests (default 2,000). */
  latencyWindow?: number;
  /** TTFT targets per interactive tier (default: the paper's 1 s / 60 s). */
  sloTtftMs?: Partial<Record<"iw-fast" | "iw-normal", number>>;
  /** Write the summary to KV bucket `sage-observer`, key `summary`, this often (default 5 s; 0 = never). */
  summaryMs?: number;
  /**
   * Idle prefill times of the engines (the measured performance model): with it the dashboard judges
   * each finished request's SLO feasibility on the GPU type its instance reported, and flags prompts
   * beyond the measured profile. Without it every request counts as feasible.
   */
  promptTiming?: PromptTiming;
}

interface InstanceView {
  instanceId: string;
  nodeId: string;
  region: string;
  model: string;
  gpuType: string;
  state: InstanceState;
  kvUtilization: number;
  kvCapacityTokens: number;
  tokensPerSecond: number;
  outstandingTokens: number;
  atMs: number;
}

export interface TierSummary {
  completed: number;
  failed: number;
  /** Cancelled by the client, and rejected by the engine as invalid: neither counts for the SLO. */
  cancelled: number;
  rejected: number;
  sloMet: number;
  /** sloMet / (completed + failed); null before the first request. */
  attainment: number | null;
  /** Attainment over the requests finished in the last 5 minutes (null: none). */
  attainmentRecent: number | null;
  /**
   * Requests whose prompt the serving GPU type cannot prefill within the tier's TTFT target even on an
   * idle instance, their share of the finished ones, and attainment over the others (null: none yet).
   */
  infeasible: number;
  infeasibleShare: number | null;
  attainmentFeasible: number | null;
  ttftMs: { p50: number; p99: number } | null;
  tbtMs: { p50: number; p99: number } | null;
}

export interface DashboardPoint {
  /** Epoch seconds. */
  t: number;
  /** Serving instances per "model|region|gpu". */
  instances: Record<string, number>;
  kvUsedTokens: number;
  kvCapacityTokens: number;
  tokensPerSecond: number;
  niwQueue: Record<string, number>;
  attainment: Record<Tier, number | null>;
  attainmentRecent: Record<Tier, number | null>;
  attainmentFeasible: Record<Tier, number | null>;
  ttftP50: Record<Tier, number | null>;
  ttftP99: Record<Tier, number | null>;
  gpuHours: number;
}

export interface ClusterSummary {
  atMs: number;
  startedAtMs: number;
  gpuHours: number;
  tiers: Record<Tier, TierSummary>;
  /** Whether SLO feasibility is judged (a performance model was given); if not, nothing is infeasible. */
  feasibilityJudged: boolean;
  /** Requests whose prompt is longer than the measured profile of its (model, GPU type), per model. */
  beyondProfile: Record<string, number>;
  /** Instances by region → model → state. */
  instances: Record<string, Record<string, Partial<Record<InstanceState, number>>>>;
}

export interface DashboardState extends ClusterSummary {
  regions: Payload<typeof RegionStatus>[];
  plan: Payload<typeof Plan> | null;
  points: DashboardPoint[];
}

class Window {
  private readonly xs: number[] = [];
  private next = 0;
  constructor(private readonly size: number) {}
  add(x: number): void {
    if (this.xs.length < this.size) this.xs.push(x);
    else this.xs[this.next] = x;
    this.next = (this.next + 1) % this.size;
  }
  percentiles(): { p50: number; p99: number } | null {
    if (this.xs.length === 0) return null;
    const s = [...this.xs].sort((a, b) => a - b);
    const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
    return { p50: at(0.5), p99: at(0.99) };
  }
}

/**
 * The cluster's observer and its web page. Listens (passively: it never takes part in a queue
 * group) to load reports, heartbeats, finished requests, region summaries and plans; keeps time
 * series of instances, load vs capacity, NIW queue depth, SLO attainment, latency percentiles and
 * GPU-hours; serves them at `/` (the dashboard) and `/api/state` (JSON), and stores a summary in KV
 * for `sageserve status`.
 */
export class DashboardActor extends Actor {
  url = "";
  private server: Server | undefined;
  private readonly instances = new Map<string, InstanceView>();
  private readonly gpusPerNode = new Map<string, number>();
  private readonly regions = new Map<string, Payload<typeof RegionStatus>>();
  private plan: Payload<typeof Plan> | null = null;
  private readonly tiers = new Map<
    Tier,
    {
      completed: number;
      failed: number;
      cancelled: number;
      rejected: number;
      slo: SloCounts;
      recent: RecentSlo;
    }
  >();
  /** GPU type of each instance seen in a load report (kept after it goes stale; bounded). */
  private readonly gpuByInstance = new Map<string, string>();
  private readonly beyondProfile = new Map<string, number>();
  private readonly ttft = new Map<Tier, Window>();
  private readonly tbt = new Map<Tier, Window>();
  private readonly points: DashboardPoint[] = [];
  private gpuHours = 0;
  private lastSampleMs = 0;
  private startedAtMs = 0;
  private readonly slo: Record<"iw-fast" | "iw-normal", number>;

  constructor(
    ctx: ActorContext,
    private readonly opts: DashboardOptions = {},
  ) {
    super(ctx, { role: "dashboard", id: "dashboard", description: "live cluster view over HTTP" });
    this.slo = { ...DEFAULT_SLO_TTFT_MS, ...opts.sloTtftMs };
    for (const t of TIERS) {
      this.tiers.set(t, {
        completed: 0,
        failed: 0,
        cancelled: 0,
        rejected: 0,
        slo: emptySloCounts(),
        recent: new RecentSlo(RECENT_SLO_MS),
      });
      this.ttft.set(t, new Window(opts.latencyWindow ?? 2_000));
      this.tbt.set(t, new Window(opts.latencyWindow ?? 2_000));
    }
  }

  protected async setup(): Promise<void> {
    const watch = { broadcast: true, passive: true } as const;
    this.on(LoadReport, {}, (r) => this.onLoad(r), watch);
    this.on(Heartbeat, {}, (h) => void this.gpusPerNode.set(h.nodeId, h.gpus), watch);
    this.on(RequestDone, {}, (d) => this.onDone(d), watch);
    this.on(RegionStatus, {}, (s) => void this.regions.set(s.region, s), watch);
    this.on(
      Plan,
      {},
      (p) => {
        this.plan = p;
      },
      watch,
    );
    const latest = await this.kvGet("sage-plans", "latest");
    if (latest.ok && latest.value !== undefined) {
      const p = validatePayload(Plan, latest.value);
      if (p.ok) this.plan = p.value;
    }
    this.startedAtMs = this.lastSampleMs = this.clock.now();
    this.every(this.opts.sampleMs ?? 2_000, () => this.sample());
    const summaryMs = this.opts.summaryMs ?? 5_000;
    if (summaryMs > 0)
      this.every(summaryMs, async () => {
        await this.kvPut("sage-observer", "summary", this.summary());
      });
    this.server = createServer((req, res) => this.serve(req, res));
    this.url = await listenUrl(this.server, this.opts.port ?? 0, this.opts.host ?? "127.0.0.1", "dashboard");
  }

  protected override teardown(): Promise<void> {
    return closeServer(this.server);
  }

  private onLoad(r: Payload<typeof LoadReport>): void {
    if (!this.gpuByInstance.has(r.instanceId)) {
      if (this.gpuByInstance.size >= 10_000)
        this.gpuByInstance.delete(this.gpuByInstance.keys().next().value!);
      this.gpuByInstance.set(r.instanceId, r.gpuType);
    }
    const cur = this.instances.get(r.instanceId);
    if (cur && cur.atMs > r.atMs) return;
    this.instances.set(r.instanceId, {
      instanceId: r.instanceId,
      nodeId: r.nodeId,
      region: r.region,
      model: r.model,
      gpuType: r.gpuType,
      state: r.state,
      kvUtilization: r.kvUtilization,
      kvCapacityTokens: r.kvCapacityTokens ?? 0,
      tokensPerSecond: r.tokensPerSecond,
      outstandingTokens: r.outstandingTokens,
      atMs: r.atMs,
    });
  }

  private onDone(d: Payload<typeof RequestDone>): void {
    const t = this.tiers.get(d.tier)!;
    // Cancelled by the client or rejected as invalid: counted apart, not in SLO attainment.
    if (!judgedForSlo(d)) {
      if (d.outcome === "cancelled") t.cancelled++;
      else t.rejected++;
      return;
    }
    const v = promptVerdict(
      this.opts.promptTiming,
      {
        model: d.model,
        gpuType: this.gpuByInstance.get(d.instanceId),
        tier: d.tier,
        inputTokens: d.inputTokens,
      },
      this.slo,
    );
    if (v.beyondProfile) this.beyondProfile.set(d.model, (this.beyondProfile.get(d.model) ?? 0) + 1);
    const met = metSlo(d, this.slo);
    countSlo(t.slo, met, v);
    t.recent.add(this.clock.now(), met);
    if (d.outcome !== "ok") {
      t.failed++;
      return;
    }
    t.completed++;
    this.ttft.get(d.tier)!.add(d.ttftMs);
    this.tbt.get(d.tier)!.add(d.tbtMs);
  }

  private live(): InstanceView[] {
    const now = this.clock.now();
    const stale = this.opts.staleAfterMs ?? 15_000;
    const out: InstanceView[] = [];
    for (const [id, i] of this.instances) {
      if (now - i.atMs > stale) this.instances.delete(id);
      else out.push(i);
    }
    return out;
  }

  private tierSummary(tier: Tier): TierSummary {
    const t = this.tiers.get(tier)!;
    return {
      completed: t.completed,
      failed: t.failed,
      cancelled: t.cancelled,
      rejected: t.rejected,
      sloMet: t.slo.sloMet,
      infeasible: t.slo.infeasible,
      ...sloRates(t.slo),
      attainmentRecent: t.recent.attainment(this.clock.now()),
      ttftMs: this.ttft.get(tier)!.percentiles(),
      tbtMs: this.tbt.get(tier)!.percentiles(),
    };
  }

  private tierSummaries(): Record<Tier, TierSummary> {
    return Object.fromEntries(TIERS.map((t) => [t, this.tierSummary(t)])) as Record<Tier, TierSummary>;
  }

  private sample(): void {
    const now = this.clock.now();
    const live = this.live();
    // GPU-hours: every paid VM's GPUs over the time since the last sample.
    const paidNodes = new Set<string>();
    for (const i of live) if (PAID_STATES.has(i.state)) paidNodes.add(i.nodeId);
    let gpus = 0;
    for (const n of paidNodes) gpus += this.gpusPerNode.get(n) ?? 8;
    this.gpuHours += (gpus * (now - this.lastSampleMs)) / 3_600_000;
    this.lastSampleMs = now;
    const instances: Record<string, number> = {};
    let kvUsed = 0;
    let kvCap = 0;
    let tps = 0;
    for (const i of live) {
      if (i.state !== "serving") continue;
      const k = tripleKey(i.model, i.region, i.gpuType);
      instances[k] = (instances[k] ?? 0) + 1;
      kvUsed += i.kvUtilization * i.kvCapacityTokens;
      kvCap += i.kvCapacityTokens;
      tps += i.tokensPerSecond;
    }
    const niwQueue: Record<string, number> = {};
    for (const [region, s] of this.regions)
      niwQueue[region] = s.endpoints.reduce((a, e) => a + e.niwQueueDepth, 0);
    // One summary per tier per sample: each sorts the tier's latency window.
    const sums = this.tierSummaries();
    const per = <T>(f: (s: TierSummary) => T) =>
      Object.fromEntries(TIERS.map((t) => [t, f(sums[t])])) as Record<Tier, T>;
    this.points.push({
      t: now / 1000,
      instances,
      kvUsedTokens: Math.round(kvUsed),
      kvCapacityTokens: kvCap,
      tokensPerSecond: tps,
      niwQueue,
      attainment: per((s) => s.attainment),
      attainmentRecent: per((s) => s.attainmentRecent),
      attainmentFeasible: per((s) => s.attainmentFeasible),
      ttftP50: per((s) => s.ttftMs?.p50 ?? null),
      ttftP99: per((s) => s.ttftMs?.p99 ?? null),
      gpuHours: this.gpuHours,
    });
    const max = this.opts.maxPoints ?? 1_800;
    if (this.points.length > max) this.points.splice(0, this.points.length - max);
  }

  summary(): ClusterSummary {
    const instances: ClusterSummary["instances"] = {};
    for (const i of this.live()) {
      const byModel = instances[i.region] ?? {};
      instances[i.region] = byModel;
      const byState = byModel[i.model] ?? {};
      byModel[i.model] = byState;
      byState[i.state] = (byState[i.state] ?? 0) + 1;
    }
    return {
      atMs: this.clock.now(),
      startedAtMs: this.startedAtMs,
      gpuHours: this.gpuHours,
      tiers: this.tierSummaries(),
      feasibilityJudged: this.opts.promptTiming !== undefined,
      beyondProfile: Object.fromEntries([...this.beyondProfile].sort(([a], [b]) => a.localeCompare(b))),
      instances,
    };
  }

  state(): DashboardState {
    return {
      ...this.summary(),
      regions: [...this.regions.values()].sort((a, b) => a.region.localeCompare(b.region)),
      plan: this.plan,
      points: this.points,
    };
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "application/json", allow: "GET" });
      res.end(JSON.stringify({ error: { code: "method_not_allowed", message: `${req.method} ${path}` } }));
      return;
    }
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(renderDashboardHtml(this.opts.sampleMs ?? 2_000));
    } else if (path === "/api/state") {
      res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify(this.state()));
    } else if (path === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    } else {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "not_found", message: `no page at ${path}` } }));
    }
  }
}
