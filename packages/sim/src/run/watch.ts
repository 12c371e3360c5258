import { DemandReport, LoadReport } from "@sageserve/protocol";
import { Actor, type ActorContext } from "@sageserve/runtime";

/**
 * An observer for simulations (`SimOptions.observers`): serving instances per model, sampled every
 * minute from the load reports, and each minute's interactive demand per model from the routers'
 * demand reports (summed over regions).
 */
export class EndpointWatch extends Actor {
  private readonly states = new Map<string, { model: string; state: string }>();
  /** Serving instances per model at the end of each simulated minute. */
  readonly serving: Record<string, number>[] = [];
  /** Interactive demand per "model" and minute (epoch minute): tokens/s, requests, prompt and output tokens. */
  readonly demand = new Map<
    string,
    Map<number, { tps: number; requests: number; input: number; output: number }>
  >();

  constructor(ctx: ActorContext) {
    super(ctx, {
      role: "observer",
      id: "endpoint-watch",
      description: "serving instances and demand per minute",
    });
  }

  protected async setup(): Promise<void> {
    this.on(LoadReport, {}, (r) => void this.states.set(r.instanceId, { model: r.model, state: r.state }), {
      broadcast: true,
    });
    this.on(
      DemandReport,
      {},
      (d) => {
        const iw = [d.byTier["iw-fast"], d.byTier["iw-normal"]];
        const byMinute = this.demand.get(d.model) ?? new Map();
        this.demand.set(d.model, byMinute);
        const k = Math.round(d.windowStartMs / 60_000);
        const cur = byMinute.get(k) ?? { tps: 0, requests: 0, input: 0, output: 0 };
        const input = iw.reduce((a, t) => a + t.inputTokens, 0);
        const output = iw.reduce((a, t) => a + t.outputTokens, 0);
        cur.requests += iw.reduce((a, t) => a + t.requests, 0);
        cur.input += input;
        cur.output += output;
        cur.tps += (input + output) / (d.windowMs / 1000);
        byMinute.set(k, cur);
      },
      { broadcast: true },
    );
    this.every(60_000, () => {
      const n: Record<string, number> = {};
      for (const { model, state } of this.states.values())
        if (state === "serving") n[model] = (n[model] ?? 0) + 1;
      this.serving.push(n);
    });
  }
}
