import { GatewayActor } from "@sageserve/gateway";
import { NatsBus } from "@sageserve/nats";
import { BATCH_RESULTS_BUCKET } from "@sageserve/protocol";
import { RegionAgentActor } from "@sageserve/region-agent";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";
import { type NodeProcess, spawnNodeAgent, until } from "./support/procs.js";

/**
 * The OpenAI Files and Batch APIs through the official `openai` SDK (issue 17), against real processes:
 * two `sageserve node-agent` processes (each with an engine-emulator process), a router, a region
 * agent consuming the durable NIW queue and two gateways, all on a real nats-server. Files live in the
 * JetStream object store, batches in KV; each node stores its request's result before the queued job
 * is acknowledged, so a node SIGKILLed mid-batch and a gateway stopped mid-batch lose nothing.
 */
/** The chat.completion body of an output line, as far as the tests read it. */
interface CompletionBody {
  object: string;
  model: string;
  choices: { message: { content: string } }[];
  usage: { completion_tokens: number };
}

describe("the OpenAI Batch and Files APIs, with a node killed and a gateway stopped mid-batch", () => {
  let fx: NatsFixture;
  const clock = new WallClock({ seed: 23 });
  const buses: NatsBus[] = [];
  const nodes: NodeProcess[] = [];
  let router: RouterActor;
  let agent: RegionAgentActor;
  let gatewayA: GatewayActor;
  let gatewayB: GatewayActor;
  let a: OpenAI;
  let b: OpenAI;
  let kv: NatsBus;
  const MODEL = "llama3.2-3b";
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };
  const agentOptions = {
    region: "westus",
    models: [MODEL],
    mode: "unified" as const,
    gpuTypes: ["h100"],
    scalingIntervalMs: 200,
    niwAckWaitMs: 3_000,
    staleAfterMs: 3_000,
  };
  const jsonl = (n: number, maxTokens: number, prefix = "req") =>
    `${Array.from({ length: n }, (_, i) =>
      JSON.stringify({
        custom_id: `${prefix}-${i}`,
        method: "POST",
        url: "/v1/chat/completions",
        body: { model: MODEL, messages: [{ role: "user", content: `question ${i}` }], max_tokens: maxTokens },
      }),
    ).join("\n")}\n`;
  const upload = async (client: OpenAI, text: string, name = "in.jsonl") =>
    client.files.create({ file: await toFile(Buffer.from(text), name), purpose: "batch" });
  const settle = async (client: OpenAI, id: string, ms = 60_000) => {
    let batch = await client.batches.retrieve(id);
    const end = Date.now() + ms;
    while (!["completed", "failed", "expired", "cancelled"].includes(batch.status) && Date.now() < end) {
      await clock.sleep(250);
      batch = await client.batches.retrieve(id);
    }
    return batch;
  };
  const lines = async (client: OpenAI, fileId: string | null | undefined) => {
    if (!fileId) return [];
    const text = await (await client.files.content(fileId)).text();
    return text
      .split("\n")
      .filter((l) => l)
      .map(
        (l) =>
          JSON.parse(l) as {
            custom_id: string;
            response: { status_code: number; body: CompletionBody } | null;
          },
      );
  };

  beforeAll(async () => {
    fx = await startNats();
    kv = (await ctx("reader")).bus;
    router = new RouterActor(await ctx("router"), { regions: ["westus"], models: [MODEL] });
    agent = new RegionAgentActor(await ctx("region-agent"), agentOptions);
    const gw = { region: "westus", models: [MODEL], batchTickMs: 250, batchOwnerTtlMs: 2_000 };
    gatewayA = new GatewayActor(await ctx("gateway-a"), gw);
    gatewayB = new GatewayActor(await ctx("gateway-b"), gw);
    for (const x of [router, agent, gatewayA, gatewayB]) await x.start();
    // ~40 ms a token: a 60-token answer runs for a few seconds, long enough to kill its node under it.
    for (const nodeId of ["w1", "w2"])
      nodes.push(
        await spawnNodeAgent({ natsUrl: fx.url, nodeId, region: "westus", model: MODEL, speedup: 0.05 }),
      );
    expect(
      await until(() => router.routableInstances(MODEL).length === 2, 40_000),
      "both nodes routable",
    ).toBe(true);
    a = new OpenAI({ baseURL: `${gatewayA.url}/v1`, apiKey: "none", maxRetries: 0 });
    b = new OpenAI({ baseURL: `${gatewayB.url}/v1`, apiKey: "none", maxRetries: 0 });
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) await n.stop();
    for (const x of [gatewayA, gatewayB, agent, router]) await x?.stop();
    for (const bus of buses) await bus.close();
    clock.cancelAll();
    await fx?.stop();
  });

  it("uploads, lists, retrieves, reads back and deletes a file (object store)", async () => {
    const text = jsonl(3, 4, "f");
    const f = await upload(a, text, "three.jsonl");
    expect(f).toMatchObject({
      object: "file",
      purpose: "batch",
      filename: "three.jsonl",
      bytes: Buffer.byteLength(text),
    });
    // Any gateway answers for any file.
    expect(await b.files.retrieve(f.id)).toMatchObject({ id: f.id, bytes: f.bytes });
    expect((await b.files.list()).data.map((x) => x.id)).toContain(f.id);
    expect(await (await b.files.content(f.id)).text()).toBe(text);
    expect(await a.files.delete(f.id)).toMatchObject({ id: f.id, deleted: true });
    await expect(b.files.retrieve(f.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(
      a.files.create({ file: await toFile(Buffer.from("x"), "x.txt"), purpose: "fine-tune" }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });

  it("runs a batch to completion: every request in the output file, in OpenAI's line format", async () => {
    const input = await upload(a, jsonl(12, 6));
    const created = await a.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
      metadata: { job: "nightly" },
    });
    expect(created).toMatchObject({ object: "batch", status: "in_progress", request_counts: { total: 12 } });
    const batch = await settle(b, created.id);
    expect(batch).toMatchObject({
      status: "completed",
      request_counts: { total: 12, completed: 12, failed: 0 },
    });
    expect(batch.metadata).toEqual({ job: "nightly" });
    expect(batch.error_file_id).toBeNull();
    const out = await lines(b, batch.output_file_id);
    expect(out.map((l) => l.custom_id)).toEqual(Array.from({ length: 12 }, (_, i) => `req-${i}`));
    for (const l of out) {
      expect(l.response?.status_code).toBe(200);
      expect(l.response?.body).toMatchObject({ object: "chat.completion", model: MODEL });
      expect(l.response?.body.choices[0]?.message.content.length).toBeGreaterThan(0);
      expect(l.response?.body.usage.completion_tokens).toBe(6);
    }
    expect((await a.batches.list({ limit: 100 })).data.map((x) => x.id)).toContain(created.id);
  }, 90_000);

  it("refuses bad batches with typed errors naming what was wrong", async () => {
    const good = await upload(a, jsonl(1, 2));
    await expect(
      a.batches.create({
        input_file_id: "file-nope",
        endpoint: "/v1/chat/completions",
        completion_window: "24h",
      }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(
      a.batches.create({ input_file_id: good.id, endpoint: "/v1/embeddings", completion_window: "24h" }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    await expect(
      a.batches.create({
        input_file_id: good.id,
        endpoint: "/v1/chat/completions",
        completion_window: "2d" as "24h",
      }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError);
    // A file with a broken line: the batch fails validation, naming the line.
    const broken = await upload(a, `${jsonl(1, 2)}{"custom_id": "x", "method": "GET"}\n`);
    const failed = await a.batches.create({
      input_file_id: broken.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    expect(failed.status).toBe("failed");
    expect(failed.errors?.data?.[0]).toMatchObject({ line: 2, code: "invalid_method" });
  });

  it("answers bad input on the Files and Batch routes with typed 4xx errors, never a 5xx", async () => {
    const url = gatewayA.url;
    const call = async (
      method: string,
      path: string,
      body?: string | FormData,
      headers: Record<string, string> = {},
    ) => {
      const r = await fetch(`${url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) });
      const j = (await r.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
      return { status: r.status, code: j.error?.code, message: j.error?.message ?? "" };
    };
    const form = (parts: Record<string, string | Blob>) => {
      const f = new FormData();
      for (const [k, v] of Object.entries(parts))
        f.append(k, v, ...(typeof v === "string" ? [] : ["x.jsonl"]));
      return f;
    };
    const cases: [
      string,
      Promise<{ status: number; code: string | undefined; message: string }>,
      number,
      string,
    ][] = [
      [
        "upload as JSON",
        call("POST", "/v1/files", "{}", { "content-type": "application/json" }),
        415,
        "unsupported_media_type",
      ],
      [
        "multipart without a file",
        call("POST", "/v1/files", form({ purpose: "batch" })),
        400,
        "invalid_value",
      ],
      [
        "an empty file",
        call("POST", "/v1/files", form({ purpose: "batch", file: new Blob([]) })),
        400,
        "invalid_value",
      ],
      [
        "unknown purpose",
        call("POST", "/v1/files", form({ purpose: "x", file: new Blob(["a"]) })),
        400,
        "invalid_value",
      ],
      [
        "a broken multipart body",
        call("POST", "/v1/files", "--b\r\ngarbage", { "content-type": "multipart/form-data; boundary=b" }),
        400,
        "invalid_multipart",
      ],
      ["no such file", call("GET", "/v1/files/file-nope"), 404, "file_not_found"],
      ["a file id with odd bytes", call("GET", "/v1/files/%E0%A4%A"), 404, "file_not_found"],
      ["content of no file", call("GET", "/v1/files/..%2F..%2Fetc/content"), 404, "file_not_found"],
      ["PUT on files", call("PUT", "/v1/files"), 405, "method_not_allowed"],
      [
        "batch body not JSON",
        call("POST", "/v1/batches", "{", { "content-type": "application/json" }),
        400,
        "invalid_json",
      ],
      [
        "batch without a file",
        call(
          "POST",
          "/v1/batches",
          JSON.stringify({ endpoint: "/v1/completions", completion_window: "24h" }),
        ),
        400,
        "missing_required_parameter",
      ],
      [
        "metadata not an object",
        call(
          "POST",
          "/v1/batches",
          JSON.stringify({
            input_file_id: "file-x",
            endpoint: "/v1/completions",
            completion_window: "24h",
            metadata: [1],
          }),
        ),
        400,
        "invalid_value",
      ],
      ["no such batch", call("GET", "/v1/batches/batch_nope"), 404, "batch_not_found"],
      ["list limit out of range", call("GET", "/v1/batches?limit=1000"), 400, "invalid_value"],
      ["GET on cancel", call("GET", "/v1/batches/batch_x/cancel"), 405, "method_not_allowed"],
    ];
    for (const [what, p, status, code] of cases) {
      const r = await p;
      expect([what, r.status, r.code], r.message).toEqual([what, status, code]);
      expect(r.message.length, what).toBeGreaterThan(0);
    }
    // Past the upload limit: 413, named.
    const small = new GatewayActor(await ctx("gateway-small"), {
      region: "westus",
      models: [MODEL],
      maxFileBytes: 1_000,
    });
    await small.start();
    try {
      const r = await fetch(`${small.url}/v1/files`, {
        method: "POST",
        body: form({ purpose: "batch", file: new Blob(["x".repeat(5_000)]) }),
      });
      expect(r.status).toBe(413);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe("file_too_large");
    } finally {
      await small.stop();
    }
  });

  it("completes every request of a batch whose node is SIGKILLed while it runs them", async () => {
    const input = await upload(a, jsonl(16, 60, "kill"));
    const created = await a.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // Wait until w1's engine is generating batch requests, then kill the host under them.
    const running = async (n: NodeProcess) => {
      const text = await (await fetch(`${n.engineUrl}/metrics`)).text().catch(() => "");
      return Number(/vllm:num_requests_running\{[^}]*\} ([0-9.]+)/.exec(text)?.[1] ?? 0);
    };
    expect(await until(async () => (await running(nodes[0]!)) > 0, 30_000), "w1 runs batch requests").toBe(
      true,
    );
    const requeuedBefore = agent.niwRequeued;
    await nodes[0]!.kill();
    const batch = await settle(a, created.id, 90_000);
    expect(batch).toMatchObject({
      status: "completed",
      request_counts: { total: 16, completed: 16, failed: 0 },
    });
    const out = await lines(a, batch.output_file_id);
    expect(new Set(out.map((l) => l.custom_id)).size).toBe(16);
    expect(out.every((l) => l.response?.status_code === 200)).toBe(true);
    // The jobs w1 held were queued again, not lost.
    expect(agent.niwRequeued).toBeGreaterThan(requeuedBefore);
  }, 120_000);

  it("completes a batch whose router and region agent are replaced while it runs", async () => {
    const input = await upload(a, jsonl(12, 40, "replace"));
    const created = await a.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // Some results stored, the rest queued or running: both control actors go away and new ones start.
    expect(
      await until(async () => (await kv.kvKeys(BATCH_RESULTS_BUCKET, `${created.id}.`)).length > 0, 30_000),
    ).toBe(true);
    await agent.stop();
    await router.stop();
    router = new RouterActor(await ctx("router-2"), { regions: ["westus"], models: [MODEL] });
    agent = new RegionAgentActor(await ctx("region-agent-2"), agentOptions);
    await router.start();
    await agent.start();
    const batch = await settle(a, created.id, 90_000);
    expect(batch).toMatchObject({
      status: "completed",
      request_counts: { total: 12, completed: 12, failed: 0 },
    });
    expect(new Set((await lines(a, batch.output_file_id)).map((l) => l.custom_id)).size).toBe(12);
  }, 120_000);

  it("cancels a batch: unfinished requests stop, finished ones stay in the output", async () => {
    const input = await upload(a, jsonl(30, 120, "cancel"));
    const created = await a.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    expect(
      await until(async () => (await a.batches.retrieve(created.id)).request_counts!.total === 30, 5_000),
    ).toBe(true);
    const cancelling = await b.batches.cancel(created.id);
    expect(cancelling.status).toBe("cancelling");
    const batch = await settle(a, created.id, 30_000);
    expect(batch.status).toBe("cancelled");
    expect(batch.cancelled_at).not.toBeNull();
    expect(batch.request_counts!.completed).toBeLessThan(30);
    // What was stored is what the output file holds; nothing more arrives afterwards.
    const stored = await kv.kvEntries(BATCH_RESULTS_BUCKET, `${created.id}.`);
    expect((await lines(a, batch.output_file_id)).length).toBe(batch.request_counts!.completed);
    await clock.sleep(1_500);
    expect((await kv.kvEntries(BATCH_RESULTS_BUCKET, `${created.id}.`)).size).toBe(stored.size);
    await expect(a.batches.cancel("batch_00000000000000000000000000000000")).rejects.toBeInstanceOf(
      OpenAI.NotFoundError,
    );
  }, 60_000);

  it("finishes a batch (and a /v1/sage/jobs job) whose gateway stops mid-batch: another gateway takes it over", async () => {
    const input = await upload(a, jsonl(10, 30, "takeover"));
    const created = await a.batches.create({
      input_file_id: input.id,
      endpoint: "/v1/chat/completions",
      completion_window: "24h",
    });
    // A `/v1/sage/jobs` batch job queued on the same gateway: its output is stored by its node, so the
    // other gateway answers it in full after this one stopped.
    const queued = await fetch(`${gatewayA.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-sage-tier": "batch" },
      body: JSON.stringify({ model: MODEL, prompt: "later", max_tokens: 30 }),
    });
    expect(queued.status).toBe(202);
    const jobId = ((await queued.json()) as { id: string }).id;
    await gatewayA.stop();
    const job = async () =>
      (await (await fetch(`${gatewayB.url}/v1/sage/jobs/${jobId}`)).json()) as {
        status: string;
        output?: string;
      };
    expect(await until(async () => (await job()).status === "completed", 30_000), "job completed on B").toBe(
      true,
    );
    expect((await job()).output?.length).toBeGreaterThan(0);
    const batch = await settle(b, created.id, 60_000);
    expect(batch).toMatchObject({
      status: "completed",
      request_counts: { total: 10, completed: 10, failed: 0 },
    });
    expect((await lines(b, batch.output_file_id)).map((l) => l.custom_id).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `takeover-${i}`).sort(),
    );
  }, 90_000);
});
