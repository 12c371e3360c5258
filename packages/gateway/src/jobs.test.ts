import { type BatchLineResult, envelope, InferenceChunk } from "@sageserve/protocol";
import { MemoryBroker, VirtualClock } from "@sageserve/runtime";
import { describe, expect, it } from "vitest";
import { StreamInbox } from "./inbox.js";
import { BatchJobs, type JobStore, jobResultKey } from "./jobs.js";

/** The shared stores (KV `sage-jobs` and `sage-batch-out`) as maps. */
function stores() {
  const views = new Map<string, object>();
  const results = new Map<string, BatchLineResult>();
  const store: JobStore = {
    put: (id, view) => void views.set(id, view),
    get: async (id) => views.get(id),
    result: async (requestId) => results.get(jobResultKey(requestId)),
  };
  return { views, results, store };
}

async function setup() {
  const clock = new VirtualClock({ startMs: 0 });
  const broker = new MemoryBroker(clock);
  const inbox = new StreamInbox(broker.connect("gateway"), "gw1");
  inbox.start();
  const s = stores();
  const jobs = new BatchJobs(inbox, 100, s.store);
  const node = broker.connect("node");
  const chunk = (
    requestId: string,
    seq: number,
    c: { text?: string; done?: boolean; finishReason?: "stop" },
  ) =>
    node.publish(
      InferenceChunk.subject.build({ listener: "gw1", request: requestId }),
      envelope(InferenceChunk, { requestId, seq, tokens: c.text ? 1 : 0, done: false, ...c }),
    );
  return { clock, inbox, jobs, chunk, ...s };
}

describe("batch job views (/v1/sage/jobs/{id})", () => {
  it("a job whose last chunk was lost on its way (a NATS server died) reads as completed from the result its node stored, once, and stops listening", async () => {
    const t = await setup();
    t.jobs.track("j-r1", "r1", "llama3.2-3b", 100);
    t.chunk("r1", 0, { text: "Hel" });
    await t.clock.advance(1);
    expect(t.inbox.listening).toBe(1);
    expect(await t.jobs.view("j-r1")).toMatchObject({ status: "running" });
    expect(t.views.get("j-r1")).toMatchObject({ status: "running" });
    // The node finished and stored the result; its last chunks never reached this gateway.
    t.results.set(jobResultKey("r1"), {
      requestId: "r1",
      outcome: "ok",
      chunks: [
        { text: "Hel", tokens: 1, done: false },
        { text: "lo", tokens: 1, done: false },
        { tokens: 0, done: true, finishReason: "length" },
      ],
      atMs: 5,
    });
    const v = await t.jobs.view("j-r1");
    expect(v).toEqual({
      id: "j-r1",
      object: "sage.batch_job",
      status: "completed",
      model: "llama3.2-3b",
      created: 100,
      output: "Hello",
      finish_reason: "length",
    });
    // Settled here and in the shared store; a late chunk changes nothing.
    expect(t.views.get("j-r1")).toEqual(v);
    expect(t.inbox.listening).toBe(0);
    t.chunk("r1", 1, { text: "zzz", done: true });
    await t.clock.advance(1);
    expect(await t.jobs.view("j-r1")).toEqual(v);
  });

  it("a job still running with no stored result stays running; one whose stream ended is read without the store", async () => {
    const t = await setup();
    t.jobs.track("j-r2", "r2", "llama3.1-8b", 7);
    expect(await t.jobs.view("j-r2")).toMatchObject({ status: "queued" });
    t.chunk("r2", 0, { text: "ok" });
    t.chunk("r2", 1, { done: true, finishReason: "stop" });
    await t.clock.advance(1);
    // A stored result that disagrees would show if the store were read: it is not, the stream decided.
    t.results.set(jobResultKey("r2"), { requestId: "r2", outcome: "failed", chunks: [], atMs: 1 });
    expect(await t.jobs.view("j-r2")).toMatchObject({
      status: "completed",
      output: "ok",
      finish_reason: "stop",
    });
    expect(await t.jobs.view("j-unknown")).toBeUndefined();
  });

  it("another gateway's unfinished job reads as failed from a failed stored result", async () => {
    const t = await setup();
    t.views.set("j-r3", { id: "j-r3", status: "running", model: "m", created: 3 });
    t.results.set(jobResultKey("r3"), {
      requestId: "r3",
      outcome: "failed",
      chunks: [{ tokens: 0, done: true, error: { code: "ENGINE_FAILED", message: "engine died" } }],
      atMs: 1,
    });
    expect(await t.jobs.view("j-r3")).toMatchObject({
      status: "failed",
      output: "engine died",
      finish_reason: "error",
    });
  });
});
