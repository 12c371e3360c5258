import { generateScenario, type SimRequest } from "@sageserve/sim";
import type { ClusterSpec } from "./cluster.js";

/** Token shapes of the workload per model (Azure 2023 conversation or code traces). */
const TOKENS: Record<string, "conv" | "code"> = { "llama3.1-8b": "code" };
const TIER_HEADER = { "iw-fast": "fast", "iw-normal": "normal", niw: "batch" } as const;

export interface LoadStats {
  sent: number;
  ok: number;
  /** Batch requests accepted into the NIW queue (202). */
  queued: number;
  failed: number;
  byStatus: Record<string, number>;
  inFlight: number;
  /** Requests not sent because `maxInFlight` were already waiting (the cluster is slower than the load). */
  shed: number;
}

/**
 * Replays a seeded workload (the simulator's generator: weekly shape, bursts, Azure token lengths,
 * IW-fast / IW-normal / NIW mix) against a gateway over HTTP, in real time. Each request carries its
 * home region (`x-sage-region`) and tier (`x-sage-tier`); prompts are sized to the sampled token count.
 */
export class LoadReplayer {
  readonly stats: LoadStats = { sent: 0, ok: 0, queued: 0, failed: 0, byStatus: {}, inFlight: 0, shed: 0 };
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly gatewayUrl: string,
    private readonly spec: ClusterSpec,
    private readonly opts: { apiKey?: string; maxInFlight?: number; durationHours?: number } = {},
  ) {}

  start(): void {
    const models = [...new Set(this.spec.regions.flatMap((r) => r.models))];
    const l = this.spec.load;
    if (l.ratePerSecond <= 0) return;
    const workload = generateScenario(
      {
        name: "up",
        durationHours: this.opts.durationHours ?? 24,
        meanRatePerSecond: l.ratePerSecond,
        models: models.map((id) => ({ id, share: 1, shape: "m-large", tokens: TOKENS[id] ?? "conv" })),
        regions: this.spec.regions.map((r) => ({ id: r.id, weight: 1, utcOffsetHours: 0 })),
        tierMix: { "iw-fast": 0.45, "iw-normal": 0.27, niw: 0.28 },
        burstCv: l.burstCv,
        maxInputTokens: l.maxInputTokens,
        // Tuesday 14:00: a busy hour of the weekly shape, so the demo has traffic to show.
        startHourOfWeek: 38,
      },
      l.seed,
    );
    const t0 = Date.now();
    let batch: SimRequest[] = [];
    let i = 0;
    const pump = () => {
      if (this.stopped) return;
      for (;;) {
        if (i >= batch.length) {
          batch = workload.next();
          i = 0;
          if (batch.length === 0) return; // the workload is over
        }
        const r = batch[i]!;
        const wait = t0 + r.arrivalMs - Date.now();
        if (wait > 0) {
          this.timer = setTimeout(pump, Math.min(wait, 1_000));
          return;
        }
        i++;
        this.send(r);
      }
    };
    pump();
  }

  private send(r: SimRequest): void {
    if (this.inflight.size >= (this.opts.maxInFlight ?? 500)) {
      this.stats.shed++;
      return;
    }
    const l = this.spec.load;
    const inputTokens = Math.max(1, Math.min(l.maxInputTokens, r.inputTokens));
    const body = {
      model: r.model,
      // The gateway counts ~4 characters per token.
      prompt: "lorem ipsum ".repeat(Math.ceil(inputTokens / 3)).slice(0, inputTokens * 4),
      max_tokens: Math.max(1, Math.min(l.maxOutputTokens, r.outputTokens)),
    };
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "x-sage-tier": TIER_HEADER[r.tier],
      "x-sage-region": r.region,
    };
    if (this.opts.apiKey) headers.authorization = `Bearer ${this.opts.apiKey}`;
    this.stats.sent++;
    this.stats.inFlight++;
    const p = fetch(`${this.gatewayUrl}/v1/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    })
      .then(async (res) => {
        await res.arrayBuffer();
        const k = String(res.status);
        this.stats.byStatus[k] = (this.stats.byStatus[k] ?? 0) + 1;
        if (res.status === 200) this.stats.ok++;
        else if (res.status === 202) this.stats.queued++;
        else this.stats.failed++;
      })
      .catch(() => {
        this.stats.byStatus.network = (this.stats.byStatus.network ?? 0) + 1;
        this.stats.failed++;
      })
      .finally(() => {
        this.stats.inFlight--;
        this.inflight.delete(p);
      });
    this.inflight.add(p);
  }

  /** Stop sending; wait (bounded) for the requests in flight. */
  async stop(waitMs = 5_000): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const all = Promise.allSettled([...this.inflight]);
    await Promise.race([all, new Promise((r) => setTimeout(r, waitMs).unref())]);
  }
}
