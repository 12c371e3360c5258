/**
 * The region agent's NIW (batch) feed: jobs taken from the durable queue wait here per model, are
 * released into spare capacity (or regardless, near their deadline; or at the plan's batch rate), and
 * are acknowledged only once done — a job whose instance is lost, or a failed Batch API run, goes back to
 * the queue. Kept apart from the actor because this is its one piece of stateful delivery bookkeeping
 * (held, in flight, cancelled); `niwReleaseKind` and friends in policy.ts make its decisions.
 */
import {
  BATCH_MAX_ATTEMPTS,
  type InferenceRequest,
  niwJobId,
  type Payload,
  type Plan,
  type ReplyOf,
  type RequestDone,
  type RunCheck,
} from "@sageserve/protocol";
import type { Clock, DurableMessage, Logger } from "@sageserve/runtime";
import type { ActionCounts } from "./actions.js";
import { type InstanceInfo, type InstanceView, loadWithReleased } from "./instance-view.js";
import { type Job, NiwQueue } from "./niw-queue.js";
import {
  batchRunsAgain,
  type NiwReleaseConfig,
  niwReleaseCount,
  niwReleaseKind,
  niwRunLost,
} from "./policy.js";

/** A job that is not urgent goes only to an instance whose load, with what was released to it, is below this. */
const NIW_TARGET_LOAD_BELOW = 0.9;

/** Deadline buckets of the NIW backlog in RegionStatus (minutes from now; the last covers a week). */
export const BACKLOG_BOUNDS_MINUTES = [30, 60, 120, 240, 480, 720, 1440, 10_080];

/**
 * A released job its node has neither reported done nor confirmed this long is asked about (RunCheck); a
 * confirmed one again every RECHECK_AFTER_MS while it runs (its RequestDone may be lost as well).
 */
const RUN_CHECK_AFTER_MS = 10_000;
const RECHECK_AFTER_MS = 5 * 60_000;

/**
 * What the feed needs from the actor: the endpoint's utilisation, a way to send a job to a node, and a way
 * to ask a node which of the jobs sent to it it runs (undefined: no answer — the node may be gone, which
 * the stale rule handles).
 */
export interface NiwFeedPorts {
  utilization(model: string): number;
  dispatch(nodeId: string, job: Payload<typeof InferenceRequest>): void;
  checkRuns(nodeId: string, requestIds: string[]): Promise<ReplyOf<typeof RunCheck> | undefined>;
}

/** A released job still running, and the durable message to acknowledge when it is done. */
interface InFlight {
  msg: DurableMessage;
  job: Job;
  instanceId: string;
  nodeId: string;
  atMs: number;
  /** When its node last said it runs it (the hand-off arrived); undefined: not yet. */
  confirmedAtMs: number | undefined;
}

export class NiwFeed {
  private readonly queues = new Map<string, NiwQueue>();
  /** Durable-queue handles of the jobs in `queues`, acknowledged when each is released. */
  private readonly held = new Map<string, DurableMessage>();
  /**
   * Released jobs still running, by request id: their durable messages are acknowledged only when the
   * node reports them done (a Batch API request: after its result is stored), and a job whose instance
   * is lost goes back to the queue — nothing is lost when a node dies mid-job.
   */
  private readonly inFlight = new Map<string, InFlight>();
  private readonly cancelledQueued = new Set<string>();
  /** Batch tokens/s the plan reserves per model here, and the release allowance it has built up. */
  private readonly planRate = new Map<string, number>();
  private readonly allowance = new Map<string, { tokens: number; atMs: number }>();
  /** Releases of NIW jobs that had been released before and came back re-routed (not in niwReleased). */
  releasedAgain = 0;
  /** Queued jobs whose request was cancelled (a cancelled or expired batch), dropped unreleased. */
  cancelled = 0;
  /** Released jobs queued again because their instance was lost before they were done. */
  requeued = 0;
  /**
   * Released jobs their live node never received (it neither ran nor finished them when asked): the
   * hand-off was lost — core NATS is at most once, e.g. inside a server of a cluster that dies. Queued again.
   */
  handoffsLost = 0;
  /** Released jobs whose RequestDone never came but whose node reported them finished when asked. */
  doneByCheck = 0;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly view: InstanceView,
    private readonly cfg: NiwReleaseConfig,
    private readonly actions: ActionCounts,
    private readonly ports: NiwFeedPorts,
  ) {}

  /** Queued jobs of `model`, or of every model. */
  depth(model?: string): number {
    if (model !== undefined) return this.queues.get(model)?.size ?? 0;
    let n = 0;
    for (const q of this.queues.values()) n += q.size;
    return n;
  }

  /** The queue of `model` by deadline bucket (BACKLOG_BOUNDS_MINUTES); undefined when it is empty. */
  backlog(model: string, nowMs: number): ReturnType<NiwQueue["backlog"]> | undefined {
    return this.depth(model) > 0 ? this.queues.get(model)!.backlog(nowMs, BACKLOG_BOUNDS_MINUTES) : undefined;
  }

  /** The earliest deadline queued for `model`. */
  nextDeadlineMs(model: string): number | undefined {
    return this.queues.get(model)?.peek()?.deadlineMs;
  }

  /**
   * The plan's batch tokens/s for `model` here while jobs of it are queued (what the feed releases
   * whatever the interactive load), else 0.
   */
  pacedRate(model: string): number {
    return this.depth(model) > 0 ? (this.planRate.get(model) ?? 0) : 0;
  }

  /** The plan's batch rates for this region (replacing the last plan's). */
  setPlanRates(niw: Payload<typeof Plan>["niw"], region: string): void {
    this.planRate.clear();
    for (const n of niw ?? []) if (n.region === region) this.planRate.set(n.model, n.tokensPerSecond);
  }

  /**
   * A cancelled batch (Batch API cancel or expiry): its jobs still queued here are dropped when they
   * reach the head of the queue (the queue has no removal); running ones the node agent aborts.
   */
  cancel(requestId: string): void {
    if (this.held.has(niwJobId(requestId))) this.cancelledQueued.add(requestId);
  }

  /**
   * Jobs held here longer than the ack wait must not be redelivered: keep telling the queue (when it
   * redelivers: `Bus.durableRedelivery`; the simulator's queue does not, and a paper-scale day holds
   * millions of jobs). Then requeue runs lost with their instance and check unconfirmed hand-offs.
   */
  keepAlive(redelivers = true): void {
    if (redelivers) {
      for (const m of this.held.values()) m.working();
      for (const f of this.inFlight.values()) f.msg.working();
    }
    this.requeueLost();
    this.checkUnconfirmed();
  }

  /** A request finished: acknowledge its job (or run a failed Batch API request again), then release more. */
  onDone(d: Payload<typeof RequestDone>): void {
    this.settle(d.requestId, d.outcome);
    this.release(d.model);
  }

  private settle(requestId: string, outcome: Payload<typeof RequestDone>["outcome"]): void {
    const f = this.inFlight.get(requestId);
    if (!f) return;
    this.inFlight.delete(requestId);
    const attempt = f.job.attempt ?? 0;
    // A Batch API request the engine failed runs again (its result is stored on the last run).
    if (batchRunsAgain(outcome, f.job.resultKey, attempt, BATCH_MAX_ATTEMPTS))
      this.enqueue({ ...f.job, attempt: attempt + 1 }, f.msg);
    else f.msg.ack();
  }

  /**
   * Released jobs neither done nor confirmed RUN_CHECK_AFTER_MS after their release (or confirmed longer
   * than RECHECK_AFTER_MS ago): one RunCheck per node.
   * A job lost on its way to a live node would otherwise sit "running" for good (its instance never goes
   * stale), and one whose RequestDone was lost would never be acknowledged.
   */
  private checkUnconfirmed(): void {
    const now = this.clock.now();
    let byNode: Map<string, Job[]> | undefined;
    for (const f of this.inFlight.values()) {
      if (
        f.confirmedAtMs === undefined
          ? now - f.atMs < RUN_CHECK_AFTER_MS
          : now - f.confirmedAtMs < RECHECK_AFTER_MS
      )
        continue;
      byNode ??= new Map();
      let jobs = byNode.get(f.nodeId);
      if (!jobs) {
        jobs = [];
        byNode.set(f.nodeId, jobs);
      }
      if (jobs.length < 4096) jobs.push(f.job);
    }
    if (!byNode) return;
    for (const [nodeId, jobs] of byNode)
      void this.ports
        .checkRuns(
          nodeId,
          jobs.map((j) => j.requestId),
        )
        .then((answer) => answer && this.onRunCheck(jobs, answer));
  }

  /** A node's answer: confirmed jobs stay, finished ones are settled, the rest never arrived and go back. */
  private onRunCheck(jobs: Job[], answer: ReplyOf<typeof RunCheck>): void {
    const running = new Set(answer.running);
    const done = new Map(answer.done.map((d) => [d.requestId, d.outcome]));
    for (const job of jobs) {
      const f = this.inFlight.get(job.requestId);
      // Done, or lost with its instance and queued again, while the question was out.
      if (f?.job !== job) continue;
      if (running.has(job.requestId)) {
        f.confirmedAtMs = this.clock.now();
        continue;
      }
      const outcome = done.get(job.requestId);
      if (outcome !== undefined) {
        this.doneByCheck++;
        this.settle(job.requestId, outcome);
        continue;
      }
      this.inFlight.delete(job.requestId);
      this.handoffsLost++;
      this.log.warn(
        { jobId: job.jobId, instanceId: f.instanceId, nodeId: f.nodeId },
        "NIW job never reached its node: queued again",
      );
      // Released again at the next tick, as the job's next attempt (a batch request keeps its run count).
      this.enqueue({ ...job, attempt: (job.attempt ?? 0) + 1 }, f.msg, false);
    }
  }

  /** Released jobs whose instance is gone (silent past the stale bound, failed or stopped) are queued again. */
  private requeueLost(): void {
    const now = this.clock.now();
    for (const [requestId, f] of this.inFlight) {
      if (!niwRunLost(f.atMs, this.view.get(f.instanceId), now, this.view.staleAfterMs)) continue;
      this.inFlight.delete(requestId);
      this.requeued++;
      this.log.warn(
        { jobId: f.job.jobId, instanceId: f.instanceId },
        "NIW job lost with its instance: queued again",
      );
      this.enqueue({ ...f.job, attempt: (f.job.attempt ?? 0) + 1 }, f.msg);
    }
  }

  enqueue(job: Job, msg?: DurableMessage, releaseNow = true): void {
    const running = this.inFlight.get(job.requestId);
    if (running && msg) {
      // A redelivery of a job still running (same attempt): keep the newer handle. A job handed back by
      // its instance (a later attempt): that run is over.
      if ((job.attempt ?? 0) <= (running.job.attempt ?? 0)) {
        running.msg = msg;
        return;
      }
      this.inFlight.delete(job.requestId);
      running.msg.ack();
    }
    if (msg) {
      if (this.held.has(job.jobId)) {
        // Redelivered while we still hold it: keep the newer handle, do not queue it twice.
        this.held.set(job.jobId, msg);
        return;
      }
      this.held.set(job.jobId, msg);
    }
    let q = this.queues.get(job.model);
    if (!q) {
      q = new NiwQueue();
      this.queues.set(job.model, q);
    }
    q.push(job);
    if (releaseNow) this.release(job.model);
  }

  /** Release queued NIW jobs into spare capacity; jobs near their deadline go regardless. */
  release(model: string): void {
    const q = this.queues.get(model);
    if (!q || q.size === 0) return;
    const now = this.clock.now();
    const u = this.ports.utilization(model);
    let budget = niwReleaseCount(u, this.cfg);
    const allowance = this.accrueAllowance(model, now);
    for (let n = 0; n < this.cfg.maxPerTick && q.size > 0; n++) {
      const head = q.peek()!;
      if (this.cancelledQueued.delete(head.requestId)) {
        this.dropCancelled(q, head);
        n--;
        continue;
      }
      const cost = head.inputTokens + head.maxOutputTokens;
      const kind = niwReleaseKind(head.deadlineMs - now, cost, budget, allowance?.tokens, u, this.cfg);
      if (kind === "hold") break;
      const target = this.view.leastLoaded(model);
      if (!target) break;
      // Not urgent: only into an instance with room left — a job holds its sequence slot for its whole
      // output, and a waiting interactive request never takes a running one's (as in vLLM).
      if (kind !== "urgent" && loadWithReleased(target) >= NIW_TARGET_LOAD_BELOW) break;
      q.pop();
      this.startRun(head, target, now);
      if (kind === "paced") {
        allowance!.tokens -= cost;
        this.actions.niwPaced++;
      } else if (kind === "budget") budget--;
      // A job handed back by its instance (drained, swapped, lost) and queued again is released again:
      // counted apart, so that niwReleased and niwEscalated count jobs, each once.
      if (head.attempt !== undefined) this.releasedAgain++;
      else {
        this.actions.niwReleased++;
        if (kind === "urgent") this.actions.niwEscalated++;
      }
      target.releasedTokens += cost;
      target.releasedJobs++;
      this.ports.dispatch(target.nodeId, inferenceRequestFor(head, model, target.instanceId));
    }
  }

  /**
   * The plan's batch capacity: released at its rate whatever the utilisation (below 0.9, so interactive
   * work keeps its headroom) — the backlog meets its deadlines without waiting for escalation.
   */
  private accrueAllowance(model: string, nowMs: number): { tokens: number; atMs: number } | undefined {
    const rate = this.planRate.get(model) ?? 0;
    let allowance: { tokens: number; atMs: number } | undefined;
    if (rate > 0) {
      allowance = this.allowance.get(model) ?? { tokens: 0, atMs: nowMs };
      allowance.tokens = Math.min(rate * 60, allowance.tokens + (rate * (nowMs - allowance.atMs)) / 1000);
      allowance.atMs = nowMs;
      this.allowance.set(model, allowance);
    }
    return allowance;
  }

  /** The cancelled job at the head of the queue leaves it, acknowledged. */
  private dropCancelled(q: NiwQueue, head: Job): void {
    q.pop();
    this.held.get(head.jobId)?.ack();
    this.held.delete(head.jobId);
    this.cancelled++;
  }

  /** The job leaves the queue for `target`: its durable message is now acknowledged when the run is done. */
  private startRun(head: Job, target: InstanceInfo, nowMs: number): void {
    const msg = this.held.get(head.jobId);
    this.held.delete(head.jobId);
    if (msg)
      this.inFlight.set(head.requestId, {
        msg,
        job: head,
        instanceId: target.instanceId,
        nodeId: target.nodeId,
        atMs: nowMs,
        confirmedAtMs: undefined,
      });
  }
}

/** The inference request that runs a queued job on one instance. */
function inferenceRequestFor(head: Job, model: string, instanceId: string): Payload<typeof InferenceRequest> {
  const job: Payload<typeof InferenceRequest> = {
    requestId: head.requestId,
    model,
    tier: "niw",
    originRegion: head.originRegion,
    inputTokens: head.inputTokens,
    maxOutputTokens: head.maxOutputTokens,
    arrivalMs: head.arrivalMs,
    deadlineMs: head.deadlineMs,
    stream: false,
    instanceId,
  };
  // Set only when present (no spread of a temporary object per job: the simulator's hot path).
  if (head.body !== undefined) job.body = head.body;
  if (head.streamTo !== undefined) job.streamTo = head.streamTo;
  if (head.resultKey !== undefined) job.resultKey = head.resultKey;
  // The run's number: a node stores a batch request's failure only on its last run.
  if (head.attempt !== undefined) job.attempt = head.attempt;
  return job;
}
