import { Agent, request } from "node:http";
import { connect } from "node:net";
import { type EmulatorHandle, startEmulator } from "@sageserve/engine-emulator";
import { GatewayActor } from "@sageserve/gateway";
import { NatsBus } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import { RouterActor } from "@sageserve/router";
import { WallClock } from "@sageserve/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { table, writeFuzzReport } from "./support/fuzz-report.js";
import { ENDPOINTS, type Endpoint, GatewayFuzzer, type HttpCase } from "./support/gateway-fuzz.js";
import { type NatsFixture, startNats } from "./support/nats.js";

/**
 * Issue 9, "Bad input": ≥ 10,000 malformed requests per gateway endpoint over real HTTP on
 * loopback, against the real request path (gateway → router → node agent → engine emulator on a
 * real nats-server). Invalid JSON, wrong types, missing fields, unknown models, oversized prompts,
 * huge max_tokens, negative/NaN/Infinity values, bad auth/tier/region headers, oversized headers
 * and bodies, deep nesting, `__proto__` keys, wrong methods and content types, malformed HTTP on a
 * raw socket (test/support/gateway-fuzz.ts). Every response must be a typed 4xx in the OpenAI error
 * shape or, for a request that is valid by chance, a correct 2xx; no 5xx, no hang, every case
 * counted; the gateway serves a valid request afterwards.
 */
const PER_ENDPOINT = Number(process.env.FUZZ_HTTP_CASES ?? 10_000);
const CONCURRENCY = 32;
const TIMEOUT_MS = 20_000;
const SEED = 9;
const MODEL = "llama3.2-3b";
const MAX_BODY = 64 * 1024;
/** A small context window, so prompts past it stay small: cheaper cases, same code path. */
const MAX_MODEL_LEN = 4096;

interface Resp {
  status: number;
  contentType: string;
  body: string;
  error?: string;
}

interface Tally {
  cases: number;
  byStatus: Record<string, number>;
  byCode: Record<string, number>;
  byFamily: Record<string, number>;
  /** Summed response time per family (ms): where the wall time goes. */
  msByFamily: Record<string, number>;
  problems: string[];
  problemCount: number;
  wallMs: number;
}

const bump = (m: Record<string, number>, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};

describe(`fuzzing every gateway endpoint: ${PER_ENDPOINT.toLocaleString("en")} malformed requests each, over real HTTP`, () => {
  let fx: NatsFixture;
  let emu: EmulatorHandle;
  const clock = new WallClock({ seed: SEED });
  const buses: NatsBus[] = [];
  let gateway: GatewayActor;
  let node: NodeAgentActor;
  let router: RouterActor;
  let port = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const jobIds: string[] = [];
  const tallies = new Map<Endpoint, Tally>();
  const ctx = async (name: string) => {
    const bus = await NatsBus.connect({ servers: fx.url, name });
    buses.push(bus);
    return { bus, clock };
  };

  const send = (c: HttpCase): Promise<Resp> => (c.raw !== undefined ? sendRaw(c.raw) : sendHttp(c));

  const sendHttp = (c: HttpCase): Promise<Resp> =>
    new Promise((resolve) => {
      let settled = false;
      const done = (r: Resp) => {
        if (!settled) {
          settled = true;
          resolve(r);
        }
      };
      try {
        // Framed bodies only: Node sends a GET body without a length, and the server rightly reads
        // those bytes as the next (malformed) request.
        const headers =
          c.body !== undefined && c.body.length > 0
            ? { ...c.headers, "content-length": String(Buffer.byteLength(c.body)) }
            : c.headers;
        const req = request(
          { agent, host: "127.0.0.1", port, method: c.method, path: c.path, headers },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (d: Buffer) => chunks.push(d));
            res.on("end", () =>
              done({
                status: res.statusCode ?? 0,
                contentType: String(res.headers["content-type"] ?? ""),
                body: Buffer.concat(chunks).toString("utf8"),
              }),
            );
            res.on("error", (e) => done({ status: 0, contentType: "", body: "", error: String(e) }));
          },
        );
        req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
        req.on("error", (e) => done({ status: 0, contentType: "", body: "", error: String(e) }));
        // A server that answers early (413, 405) may close before a big upload ends: that is fine.
        if (c.body !== undefined && c.body.length > 0) req.end(c.body);
        else req.end();
      } catch (e) {
        done({ status: 0, contentType: "", body: "", error: `client refused to send: ${String(e)}` });
      }
    });

  const sendRaw = (raw: string): Promise<Resp> =>
    new Promise((resolve) => {
      const s = connect(port, "127.0.0.1");
      const chunks: Buffer[] = [];
      const timer = setTimeout(() => s.destroy(new Error("raw request timed out")), TIMEOUT_MS);
      s.on("data", (d) => chunks.push(d));
      s.on("error", () => {});
      s.on("close", () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString("utf8");
        const head = text.split("\r\n\r\n")[0] ?? "";
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
        const contentType = /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? "";
        let body = text.slice(head.length + 4);
        if (/transfer-encoding: chunked/i.test(head)) {
          let out = "";
          for (let i = 0; ; ) {
            const eol = body.indexOf("\r\n", i);
            const n = Number.parseInt(body.slice(i, eol), 16);
            if (!(n > 0)) break;
            out += body.slice(eol + 2, eol + 2 + n);
            i = eol + 2 + n + 2;
          }
          body = out;
        }
        resolve({
          status,
          contentType,
          body,
          ...(status ? {} : { error: `no HTTP response (${text.length} bytes)` }),
        });
      });
      s.end(raw);
    });

  /** Problem with one answer, or undefined when it is a typed 4xx / a correct 2xx. */
  const judge = (c: HttpCase, r: Resp, t: Tally): void => {
    t.cases++;
    bump(t.byFamily, c.family);
    bump(t.byStatus, r.error ? "none" : String(r.status));
    let problem: string | undefined;
    let code = String(r.status);
    if (r.error) problem = r.error;
    else if (r.status >= 400 && r.status < 500) {
      try {
        if (!r.contentType.startsWith("application/json")) throw new Error(`content-type ${r.contentType}`);
        const e = (JSON.parse(r.body) as { error?: Record<string, unknown> }).error;
        if (
          !e ||
          typeof e.message !== "string" ||
          typeof e.type !== "string" ||
          !("param" in e) ||
          !("code" in e)
        )
          throw new Error("not the OpenAI error shape");
        code = String(e.code);
        if (c.mustSucceed) problem = `valid request answered ${r.status} ${code}: ${e.message}`;
      } catch (e) {
        problem = `${r.status} is not a typed JSON error (${String(e)}): ${r.body.slice(0, 100)}`;
      }
    } else if (r.status >= 200 && r.status < 300) {
      code = `${r.status}`;
      problem = c.mustFail ? `invalid request answered ${r.status}` : checkSuccess(c, r);
    } else problem = `status ${r.status}: ${r.body.slice(0, 200)}`;
    bump(t.byCode, code);
    if (problem) {
      t.problemCount++;
      if (t.problems.length < 8)
        t.problems.push(`${c.family} ${c.method} ${c.path.slice(0, 60)}: ${problem}`);
    }
  };

  /** A 2xx must be the right answer for its endpoint. */
  const checkSuccess = (c: HttpCase, r: Resp): string | undefined => {
    try {
      switch (c.endpoint) {
        case "GET /health":
          return r.status === 200 ? undefined : `health answered ${r.status}`;
        case "GET /metrics":
          return r.body.includes("sage_gateway_requests_total") ? undefined : "metrics without counters";
        case "GET /v1/models": {
          const b = JSON.parse(r.body) as { object: string; data: { id: string }[] };
          return b.object === "list" && b.data.some((m) => m.id === MODEL) ? undefined : "bad model list";
        }
        case "GET /v1/sage/jobs/{id}": {
          const b = JSON.parse(r.body) as { object: string; id: string };
          return b.object === "sage.batch_job" && jobIds.includes(b.id) ? undefined : "bad job";
        }
        default: {
          if (r.status === 202) {
            const b = JSON.parse(r.body) as { object: string; id: string; status: string };
            if (b.object !== "sage.batch_job" || b.status !== "queued" || !b.id) return "bad batch answer";
            jobIds.push(b.id);
            return undefined;
          }
          if (r.contentType.startsWith("text/event-stream"))
            return r.body.endsWith("data: [DONE]\n\n") && r.body.includes('"choices"')
              ? undefined
              : "bad SSE stream";
          const b = JSON.parse(r.body) as {
            object: string;
            choices: unknown[];
            usage: { completion_tokens: number };
          };
          const want = c.endpoint === "POST /v1/chat/completions" ? "chat.completion" : "text_completion";
          // One choice per prompt (a batch of prompts) and per `n`.
          const req = JSON.parse(String(c.body)) as { n?: unknown; prompt?: unknown };
          const choices =
            (typeof req.n === "number" ? req.n : 1) * (Array.isArray(req.prompt) ? req.prompt.length : 1);
          return b.object === want && b.choices.length === choices && b.usage.completion_tokens >= 1
            ? undefined
            : `bad completion ${r.body.slice(0, 200)}`;
        }
      }
    } catch (e) {
      return `2xx body not as expected: ${String(e)}`;
    }
  };

  beforeAll(async () => {
    fx = await startNats();
    emu = await startEmulator({ model: MODEL, gpu: "h100", speedup: 50, maxModelLen: MAX_MODEL_LEN });
    node = new NodeAgentActor(await ctx("node"), {
      nodeId: "w1",
      region: "westus",
      gpuType: "h100",
      engine: { url: emu.url, kind: "vllm", model: MODEL, kvCapacityTokens: 5_000_000 },
      loadReportMs: 200,
    });
    router = new RouterActor(await ctx("router"), { regions: ["westus"], models: [MODEL] });
    gateway = new GatewayActor(await ctx("gateway"), {
      region: "westus",
      models: [MODEL],
      apiKeys: {
        "key-any": { name: "fuzzer" },
        "key-limited": { name: "limited", requestsPerSecond: 5, burst: 5 },
      },
      maxBodyBytes: MAX_BODY,
    });
    for (const a of [router, node, gateway]) await a.start();
    port = Number(new URL(gateway.url).port);
    for (let i = 0; i < 100 && node.currentState !== "serving"; i++) await clock.sleep(100);
    // Until the router has heard the serving instance's load report (a condition, not a fixed sleep).
    for (let i = 0; i < 100 && router.routableInstances().length === 0; i++) await clock.sleep(50);
    expect(router.routableInstances()).toHaveLength(1);
  }, 60_000);

  afterAll(async () => {
    agent.destroy();
    for (const a of [gateway, node, router]) await a?.stop();
    for (const b of buses) await b.close();
    await emu?.close();
    clock.cancelAll();
    await fx?.stop();
    const rows = ENDPOINTS.map((ep) => {
      const t = tallies.get(ep);
      const s = t?.byStatus ?? {};
      const n = (f: (k: number) => boolean) =>
        Object.entries(s).reduce((a, [k, v]) => a + (f(Number(k)) ? v : 0), 0);
      return [
        ep,
        t?.cases ?? 0,
        n((k) => k >= 200 && k < 300),
        n((k) => k >= 400 && k < 500),
        n((k) => k >= 500 || Number.isNaN(k)),
        t?.problemCount ?? 0,
        ((t?.wallMs ?? 0) / 1000).toFixed(1),
      ];
    });
    console.log(table(["endpoint", "cases", "2xx", "4xx", "5xx/none", "problems", "wall s"], rows));
    for (const ep of ENDPOINTS) {
      const t = tallies.get(ep);
      if (t) console.log(`${ep}: ${JSON.stringify(t.byCode)}`);
    }
    const byStatus: Record<string, number> = {};
    for (const t of tallies.values())
      for (const [k, n] of Object.entries(t.byStatus)) byStatus[k] = (byStatus[k] ?? 0) + n;
    const path = writeFuzzReport("gateway", {
      command: "FUZZ_REPORT=1 npx vitest run test/fuzz-gateway.test.ts",
      node: process.version,
      seed: SEED,
      totals: {
        cases: [...tallies.values()].reduce((a, t) => a + t.cases, 0),
        problems: [...tallies.values()].reduce((a, t) => a + t.problemCount, 0),
        wallSeconds: +([...tallies.values()].reduce((a, t) => a + t.wallMs, 0) / 1000).toFixed(2),
        byStatus,
      },
      casesPerEndpoint: PER_ENDPOINT,
      concurrency: CONCURRENCY,
      perRequestTimeoutMs: TIMEOUT_MS,
      maxBodyBytes: MAX_BODY,
      engineMaxModelLen: MAX_MODEL_LEN,
      endpoints: Object.fromEntries(
        [...tallies].map(([ep, t]) => [
          ep,
          {
            cases: t.cases,
            wallSeconds: +(t.wallMs / 1000).toFixed(2),
            byStatus: t.byStatus,
            byErrorCode: t.byCode,
            byFamily: t.byFamily,
            meanMsByFamily: Object.fromEntries(
              Object.entries(t.msByFamily).map(([f, ms]) => [f, +(ms / (t.byFamily[f] ?? 1)).toFixed(2)]),
            ),
            problems: t.problemCount,
          },
        ]),
      ),
    });
    if (path) console.log(`fuzz summary written to ${path}`);
  });

  const only = process.env.FUZZ_ENDPOINTS?.split(",");
  it.each(ENDPOINTS.filter((e) => !only || only.some((o) => e.includes(o))).map((e) => [e]))(
    "%s: every malformed request gets a typed 4xx (or a correct 2xx), none a 5xx or a hang",
    async (ep) => {
      const fuzzer = new GatewayFuzzer(
        {
          model: MODEL,
          apiKey: "key-any",
          limitedKey: "key-limited",
          jobIds: [...jobIds].sort(),
          maxBodyBytes: MAX_BODY,
          maxModelLen: MAX_MODEL_LEN,
        },
        SEED + ENDPOINTS.indexOf(ep),
      );
      const t: Tally = {
        cases: 0,
        byStatus: {},
        byCode: {},
        byFamily: {},
        msByFamily: {},
        problems: [],
        problemCount: 0,
        wallMs: 0,
      };
      tallies.set(ep, t);
      const t0 = performance.now();
      let issued = 0;
      const worker = async () => {
        while (issued < PER_ENDPOINT) {
          issued++;
          const c = fuzzer.next(ep);
          const t1 = performance.now();
          const r = await send(c);
          t.msByFamily[c.family] = (t.msByFamily[c.family] ?? 0) + performance.now() - t1;
          judge(c, r, t);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      t.wallMs = performance.now() - t0;
      expect(t.problems, `${t.problemCount} problems`).toEqual([]);
      expect(t.cases).toBe(PER_ENDPOINT);
      expect(Object.values(t.byStatus).reduce((a, b) => a + b, 0)).toBe(PER_ENDPOINT);
      expect(Object.values(t.byCode).reduce((a, b) => a + b, 0)).toBe(PER_ENDPOINT);
      expect(Object.keys(t.byStatus).every((s) => Number(s) < 500)).toBe(true);
      // The valid requests among them were served.
      expect(Object.keys(t.byStatus).some((s) => s.startsWith("2"))).toBe(true);
    },
    180_000,
  );

  it("still serves a valid request afterwards, with no prototype polluted and metrics labels bounded", async () => {
    expect(gateway.isRunning && router.isRunning && node.isRunning).toBe(true);
    const r = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: "Bearer key-any", "content-type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: "still there?" }],
        max_tokens: 3,
      }),
    });
    expect(r.status).toBe(200);
    const b = (await r.json()) as { choices: { message: { content: string } }[] };
    expect(b.choices[0]!.message.content.length).toBeGreaterThan(0);
    expect(Object.prototype).not.toHaveProperty("polluted");
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    const models = new Set(
      [...metrics.matchAll(/sage_gateway_requests_total\{model="([^"]*)"/g)].map((m) => m[1]),
    );
    // The served model, 100 unknown names, "other", and "-" for requests answered before their body was read.
    expect(models.size).toBeLessThanOrEqual(103);
    expect(gateway.stats().handlerErrors).toBe(0);
    expect(router.stats().handlerErrors).toBe(0);
  });
});
