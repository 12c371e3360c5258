import { MODELS } from "@sageserve/engine";
import { DEFAULT_NIW_DEADLINE_MS, SageError, TIERS, type Tier } from "@sageserve/protocol";
import { createRng } from "@sageserve/runtime";
import type { SimRequest, Workload } from "./types.js";

/**
 * Transforms of a workload, the same for traces, scenarios and rate files wherever they apply:
 * renaming models, regions and tiers, cutting a time window, and multiplying the rate.
 */
export interface WorkloadOptions {
  seed: number;
  /**
   * Rate multiplier. Scenarios and rate files draw `scale` times as many requests over the same
   * hours; traces are transformed as `scaleMode` says.
   */
  scale?: number;
  /**
   * Traces only. `replicate` (default): each request arrives `scale` times (the fraction by a seeded
   * draw; below 1 a seeded thinning), copies spread between it and the next request, each with its
   * own id; the time axis is kept. `compress`: arrivals at t / scale, the same requests; relative
   * deadlines are kept.
   */
  scaleMode?: ScaleMode;
  /** Keep [startMs, startMs + durationMs) of the workload, on its own time axis, moved to start at 0. */
  startMs?: number;
  durationMs?: number;
  /** Rename models, regions, tiers (`*` matches any). Applied before the window and the scale. */
  map?: Mapping;
  /** Traces only: lines may come up to this long after a later arrival; they are sorted back. */
  sortWindowMs?: number;
  /** Most tokens (prompt + output) an instance of `model` can hold; larger requests are warned of. */
  kvLimitTokens?: (model: string) => number;
}

export type ScaleMode = "replicate" | "compress";
export const SCALE_MODES: readonly ScaleMode[] = ["replicate", "compress"];

export interface Mapping {
  model?: Record<string, string>;
  region?: Record<string, string>;
  tier?: Record<string, Tier>;
}

const REGION_ID = /^[A-Za-z0-9_-]+$/;

/** `from=to[,from=to…]` from the command line, each side checked; `*` as `from` matches any. */
export function parseMapping(kind: "tier", text: string): Record<string, Tier>;
export function parseMapping(kind: keyof Mapping, text: string): Record<string, string>;
export function parseMapping(kind: keyof Mapping, text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of text.split(",").map((p) => p.trim())) {
    if (!pair) continue;
    const [from, to, extra] = pair.split("=").map((s) => s.trim());
    if (!from || !to || extra !== undefined)
      throw new SageError("CONFIG", `--map-${kind}: expected from=to, got '${pair}'`);
    const bad =
      kind === "model"
        ? !(to in MODELS) && `unknown model '${to}' (known: ${Object.keys(MODELS).join(", ")})`
        : kind === "tier"
          ? !(TIERS as readonly string[]).includes(to) &&
            `tier must be one of ${TIERS.join(", ")}, got '${to}'`
          : !REGION_ID.test(to) && `not a valid region id '${to}'`;
    if (bad) throw new SageError("CONFIG", `--map-${kind}: ${bad}`);
    if (kind === "tier" && from !== "*" && !(TIERS as readonly string[]).includes(from))
      throw new SageError("CONFIG", `--map-tier: tier must be one of ${TIERS.join(", ")}, got '${from}'`);
    out[from] = to;
  }
  return out;
}

const pick = (m: Record<string, string> | undefined, v: string): string => m?.[v] ?? m?.["*"] ?? v;

/** Rename in place; a request that becomes NIW gets the default 24 h deadline, one that stops being NIW loses it. */
export function mapRequest(r: SimRequest, m: Mapping): SimRequest {
  r.model = pick(m.model, r.model);
  r.region = pick(m.region, r.region);
  const tier = pick(m.tier, r.tier) as Tier;
  if (tier !== r.tier) {
    r.tier = tier;
    if (tier === "niw") r.deadlineMs ??= r.arrivalMs + DEFAULT_NIW_DEADLINE_MS;
    else delete r.deadlineMs;
  }
  return r;
}

export const hasMapping = (m: Mapping | undefined): m is Mapping =>
  !!m && [m.model, m.region, m.tier].some((x) => x && Object.keys(x).length);

/** The names a mapping gives a list (order of first appearance kept, duplicates merged). */
export const mapNames = (names: readonly string[], m: Record<string, string> | undefined): string[] => [
  ...new Set(names.map((n) => pick(m, n))),
];

/** A workload whose batches are rewritten request by request, renumbered from 0. */
function rewrite(
  inner: Workload,
  props: Partial<Pick<Workload, "durationMs" | "models" | "regions">>,
  batch: () => SimRequest[],
): Workload {
  let nextId = 0;
  return {
    name: inner.name,
    durationMs: props.durationMs ?? inner.durationMs,
    models: props.models ?? inner.models,
    regions: props.regions ?? inner.regions,
    ...(inner.warnings ? { warnings: inner.warnings } : {}),
    next() {
      const out = batch();
      for (const r of out) r.id = nextId++;
      return out;
    },
  };
}

export function mapWorkload(inner: Workload, m: Mapping): Workload {
  return rewrite(
    inner,
    { models: mapNames(inner.models, m.model), regions: mapNames(inner.regions, m.region) },
    () => inner.next().map((r) => mapRequest(r, m)),
  );
}

/** [startMs, startMs + durationMs) of `inner`, moved to start at 0; reads no further than the window. */
export function windowWorkload(inner: Workload, startMs: number, durationMs?: number): Workload {
  if (startMs >= inner.durationMs)
    throw new SageError(
      "CONFIG",
      `--start ${startMs / 1000} s is past the end of ${inner.name} (${inner.durationMs / 1000} s)`,
    );
  const endMs =
    durationMs === undefined ? inner.durationMs : Math.min(inner.durationMs, startMs + durationMs);
  let done = false;
  return rewrite(inner, { durationMs: endMs - startMs }, () => {
    const out: SimRequest[] = [];
    while (!done && out.length === 0) {
      const batch = inner.next();
      if (batch.length === 0) done = true;
      for (const r of batch) {
        if (r.arrivalMs >= endMs) {
          done = true;
          break;
        }
        if (r.arrivalMs < startMs) continue;
        r.arrivalMs -= startMs;
        if (r.deadlineMs !== undefined) r.deadlineMs -= startMs;
        out.push(r);
      }
    }
    return out;
  });
}

/** Arrivals at t / scale (scale 2: twice the rate over half the time); relative deadlines kept. */
export function compressWorkload(inner: Workload, scale: number): Workload {
  return rewrite(inner, { durationMs: Math.max(1, Math.ceil(inner.durationMs / scale)) }, () =>
    inner.next().map((r) => {
      const at = Math.round(r.arrivalMs / scale);
      if (r.deadlineMs !== undefined) r.deadlineMs += at - r.arrivalMs;
      r.arrivalMs = at;
      return r;
    }),
  );
}

/**
 * Each request `scale` times on the same time axis: ⌊scale⌋ instances, one more with probability of
 * the fraction (so 0.3 keeps 30 %). The copies of a request arrive at seeded uniform times between
 * it and the next request, so arrival order holds without a sort.
 */
export function replicateWorkload(inner: Workload, scale: number, seed: number): Workload {
  const rng = createRng(seed, "trace-replicate");
  const whole = Math.floor(scale);
  const frac = scale - whole;
  let held: SimRequest | undefined;
  let done = false;
  const emit = (r: SimRequest, untilMs: number, out: SimRequest[]): void => {
    const n = whole + (frac > 0 && rng.next() < frac ? 1 : 0);
    if (n === 0) return;
    out.push(r);
    const offsets: number[] = [];
    for (let k = 1; k < n; k++) offsets.push(Math.floor(rng.next() * (untilMs - r.arrivalMs)));
    offsets.sort((a, b) => a - b);
    for (const d of offsets) {
      out.push({
        ...r,
        arrivalMs: r.arrivalMs + d,
        ...(r.deadlineMs === undefined ? {} : { deadlineMs: r.deadlineMs + d }),
      });
    }
  };
  return rewrite(inner, {}, () => {
    const out: SimRequest[] = [];
    while (!done && out.length === 0) {
      const batch = inner.next();
      if (batch.length === 0) {
        done = true;
        if (held) emit(held, held.arrivalMs, out);
        held = undefined;
      }
      for (const r of batch) {
        if (held) emit(held, r.arrivalMs, out);
        held = r;
      }
    }
    return out;
  });
}
