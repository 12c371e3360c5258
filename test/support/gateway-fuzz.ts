import { createRng, type Rng } from "@sageserve/runtime";

/**
 * Seeded malformed HTTP requests for the gateway (issue 9, "Bad input"). Each case is one request
 * to one endpoint group, built from a valid request by one mutation family; `valid` cases are the
 * valid request itself and must get a correct 2xx.
 */
export const ENDPOINTS = [
  "POST /v1/chat/completions",
  "POST /v1/completions",
  "GET /v1/models",
  "GET /v1/sage/jobs/{id}",
  "GET /health",
  "GET /metrics",
] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

export interface HttpCase {
  endpoint: Endpoint;
  family: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
  /** Bytes for a raw socket instead (malformed HTTP the client library would refuse to send). */
  raw?: string;
  /** The unmutated valid request: it must be answered 2xx. */
  mustSucceed: boolean;
  /** Invalid whatever else it carries (a bad API key, tier or region): a 2xx is a bug. */
  mustFail?: boolean;
}

export interface GatewayFuzzConfig {
  model: string;
  apiKey: string;
  /** A key with a tight rate limit (its 429s are typed errors too). */
  limitedKey: string;
  /** Batch job ids the gateway knows (filled in as batch requests are answered). */
  jobIds: string[];
  /** The gateway's body cap. */
  maxBodyBytes: number;
  /** The engine's context length in tokens. */
  maxModelLen: number;
}

const JSON_CT = "application/json";

export class GatewayFuzzer {
  private readonly rng: Rng;
  constructor(
    private readonly cfg: GatewayFuzzConfig,
    seed: number,
  ) {
    this.rng = createRng(seed, "gateway-fuzz");
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.cfg.apiKey}`, "content-type": JSON_CT, ...extra };
  }

  next(endpoint: Endpoint): HttpCase {
    switch (endpoint) {
      case "POST /v1/chat/completions":
        return this.completion(endpoint, true);
      case "POST /v1/completions":
        return this.completion(endpoint, false);
      default:
        return this.get(endpoint);
    }
  }

  // ------------------------------------------------------------------ POST

  private validBody(chat: boolean): Record<string, unknown> {
    const rng = this.rng;
    const b: Record<string, unknown> = chat
      ? {
          model: this.cfg.model,
          messages: [
            ...(rng.next() < 0.3 ? [{ role: "system", content: "be brief" }] : []),
            { role: "user", content: rng.pick(["hi", "Say hello", "tell me a story"]) },
          ],
        }
      : { model: this.cfg.model, prompt: rng.pick(["Once upon a time", "hello", ["a", "b"]]) };
    b[rng.next() < 0.5 ? "max_tokens" : chat ? "max_completion_tokens" : "max_tokens"] = rng.int(1, 3);
    if (rng.next() < 0.4) b.stream = true;
    if (rng.next() < 0.2) b.temperature = rng.pick([0, 0.7, 2]);
    return b;
  }

  private completion(endpoint: Endpoint, chat: boolean): HttpCase {
    const rng = this.rng;
    const path = chat ? "/v1/chat/completions" : "/v1/completions";
    const tier = rng.next() < 0.1 ? "batch" : rng.pick(["fast", "normal"]);
    const base = this.validBody(chat);
    // A batch request cannot be streamed (a typed 400): the valid batch request is not.
    if (tier === "batch") delete base.stream;
    const mk = (family: string, body: unknown, extra: Partial<HttpCase> = {}): HttpCase => ({
      endpoint,
      family,
      method: "POST",
      path,
      headers: this.headers({ "x-sage-tier": tier }),
      body: typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body),
      mustSucceed: false,
      ...extra,
    });
    const family = rng.pick([
      "valid",
      "json-syntax",
      "json-root",
      "missing-field",
      "wrong-type",
      "number",
      "unknown-model",
      "messages",
      "oversized-prompt",
      "huge-body",
      "deep",
      "proto",
      "headers",
      "content-type",
      "method",
      "path",
      "raw-http",
    ]);
    switch (family) {
      case "valid":
        return mk(family, base, { mustSucceed: true });
      case "json-syntax": {
        const text = JSON.stringify(base);
        return mk(
          family,
          rng.pick<string | Buffer>([
            text.slice(0, rng.int(0, text.length - 1)),
            "{oops",
            "",
            "{",
            '{"model": }',
            `${text},`,
            `\ufeff${text}`.slice(0, 3),
            "NaN",
            "{'model': 'x'}",
            text.replace(":", "="),
            Buffer.from(Array.from({ length: rng.int(1, 200) }, () => rng.int(0, 255))),
            Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
          ]),
        );
      }
      case "json-root":
        return mk(
          family,
          rng.pick(["[]", "[1,2]", "1", '"x"', "null", "true", "1e999", `[${JSON.stringify(base)}]`]),
        );
      case "missing-field": {
        const b = { ...base };
        for (const k of rng.pick([
          ["model"],
          [chat ? "messages" : "prompt"],
          ["model", chat ? "messages" : "prompt"],
        ]))
          delete b[k];
        return mk(family, b);
      }
      case "wrong-type": {
        const b = { ...base };
        const field = rng.pick([
          "model",
          chat ? "messages" : "prompt",
          "max_tokens",
          "max_completion_tokens",
          "stream",
          "temperature",
          "top_p",
          "n",
          "stop",
          "stream_options",
          "user",
          "seed",
        ]);
        b[field] = rng.pick<unknown>([
          null,
          true,
          1,
          -1,
          1.5,
          "",
          "x",
          "1",
          [],
          [1],
          {},
          { a: 1 },
          [null],
          "NaN",
        ]);
        return mk(family, b);
      }
      case "number": {
        const field = rng.pick([
          "max_tokens",
          "max_completion_tokens",
          "temperature",
          "top_p",
          "n",
          "seed",
          "presence_penalty",
        ]);
        // Raw JSON number text, so 1e999 (Infinity), -0 and 2^53+1 reach the server as written.
        const value = rng.pick([
          "-1",
          "0",
          "-0",
          "1.5",
          "1000001",
          "1000000",
          "9007199254740993",
          "1e308",
          "1e999",
          "-1e999",
          "5e-324",
          '"NaN"',
          '"Infinity"',
          "99999999999999999999999",
          "3",
        ]);
        const text = JSON.stringify({ ...base, [field]: 0 }).replace(`"${field}":0`, `"${field}":${value}`);
        return mk(family, text);
      }
      case "unknown-model":
        return mk(family, {
          ...base,
          model: rng.pick([
            "gpt-9",
            "llama3.2-3B",
            `${this.cfg.model} `,
            "x".repeat(rng.pick([10, 257, 5000])),
            "a.b.c",
            "*",
            ">",
            "mödel-ü",
            "model with spaces",
            "../../etc/passwd",
            "__proto__",
            "constructor",
            `m-${rng.int(0, 1e9)}`,
            "\u0000",
          ]),
        });
      case "messages": {
        if (!chat) {
          return mk(family, {
            ...base,
            prompt: rng.pick<unknown>([
              [],
              [1, 2],
              [null],
              ["a", 1],
              [["nested"]],
              [{ text: "x" }],
              [{ toString: 1 }],
            ]),
          });
        }
        const m = rng.pick<unknown>([
          null,
          1,
          "hello",
          [],
          {},
          { role: 1, content: "x" },
          { role: "wizard", content: "x" },
          { role: "user" },
          { role: "user", content: null },
          { role: "user", content: 5 },
          { role: "user", content: { text: "x" } },
          { role: "user", content: [null] },
          { role: "user", content: [{ type: 1 }] },
          { role: "user", content: [{ type: "text", text: 5 }] },
          { role: "user", content: [{ type: "text", text: "ok" }] },
          { role: "user", content: [{ toString: 1 }] },
        ]);
        const messages = rng.next() < 0.1 ? Array.from({ length: 5000 }, () => m) : [m];
        return mk(family, { ...base, messages });
      }
      case "oversized-prompt": {
        // Under the body cap but past the engine's context (~4 characters a token), or with a
        // max_tokens that cannot fit: the engine refuses it, and the client must see a 400.
        const ctx = this.cfg.maxModelLen * 4;
        const size = rng.pick([
          ctx + 1_000,
          Math.floor(ctx * 1.5),
          Math.min(ctx * 3, this.cfg.maxBodyBytes - 1_000),
        ]);
        const text = "lorem ".repeat(Math.ceil(size / 6)).slice(0, size);
        const b: Record<string, unknown> = chat
          ? { ...base, messages: [{ role: "user", content: text }] }
          : { ...base, prompt: text };
        if (rng.next() < 0.3) {
          b.max_tokens = rng.pick([this.cfg.maxModelLen, 100_000, 1_000_000]);
          delete b.max_completion_tokens;
          b.messages = chat ? [{ role: "user", content: "short" }] : undefined;
          if (!chat) b.prompt = "short";
        }
        return mk(family, b);
      }
      case "huge-body": {
        const size = rng.pick([this.cfg.maxBodyBytes + 1, 300_000, 1_000_000, 2_500_000]);
        return mk(
          family,
          rng.next() < 0.5 ? { ...base, pad: "p".repeat(size) } : `{"model":"${"m".repeat(size)}"}`,
        );
      }
      case "deep": {
        const depth = rng.pick([65, 100, 1_000, 10_000, 100_000]);
        const arr = `${"[".repeat(depth)}${"]".repeat(depth)}`;
        const obj = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
        const deep = rng.next() < 0.5 ? arr : obj;
        const text = JSON.stringify({ ...base, extra: 0 }).replace('"extra":0', `"extra":${deep}`);
        if (chat && rng.next() < 0.3)
          return mk(
            family,
            JSON.stringify({ ...base, messages: 0 }).replace(
              '"messages":0',
              `"messages":[{"role":"user","content":${deep}}]`,
            ),
          );
        return mk(family, text);
      }
      case "proto": {
        const key = rng.pick(["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"]);
        const inner = rng.pick(['{"polluted":true}', '{"prototype":{"polluted":true}}', "1", '"x"', "null"]);
        const at = rng.next();
        const text = JSON.stringify(base);
        if (at < 0.5) return mk(family, `{"${key}":${inner},${text.slice(1)}`);
        if (chat) return mk(family, text.replace('{"role":"user",', `{"role":"user","${key}":${inner},`));
        return mk(family, text.replace('"prompt":', `"${key}":${inner},"prompt":`));
      }
      case "headers": {
        const h = this.headers();
        const which = rng.pick(["auth", "tier", "region", "size", "misc"]);
        if (which === "auth") {
          const v = rng.pick([
            undefined,
            "",
            "Bearer",
            "Bearer ",
            "Bearer nope",
            "Bearer constructor",
            "Bearer __proto__",
            "Bearer toString",
            "Bearer hasOwnProperty",
            `Basic ${Buffer.from("a:b").toString("base64")}`,
            `bearer ${this.cfg.apiKey}`,
            `Bearer ${this.cfg.apiKey}x`,
            `Bearer ${this.cfg.limitedKey}`,
            `Bearer ${"k".repeat(4000)}`,
          ]);
          if (v === undefined) delete h.authorization;
          else h.authorization = v;
          // Only the real keys may pass (`Bearer constructor` once did), under a scheme in any case.
          const key = /^bearer\s+(.*)$/i.exec(v ?? "")?.[1];
          const fail = key !== this.cfg.apiKey && key !== this.cfg.limitedKey;
          return { ...mk("headers", base), headers: h, mustFail: fail };
        } else if (which === "tier") {
          h["x-sage-tier"] = rng.pick([
            "",
            "FAST",
            "urgent",
            "constructor",
            "__proto__",
            "toString",
            "fast, normal",
            "x".repeat(3000),
            "batch!",
          ]);
          return { ...mk("headers", base), headers: h, mustFail: true };
        } else if (which === "region") {
          h["x-sage-region"] = rng.pick([
            "",
            "eastus",
            "WESTUS",
            "constructor",
            "*",
            "westus.x",
            "r".repeat(2000),
          ]);
        } else if (which === "size") {
          h["x-big"] = "b".repeat(rng.pick([17_000, 40_000, 70_000])); // past Node's 16 KiB header limit
        } else {
          Object.assign(
            h,
            rng.pick([
              { accept: "text/html" },
              { "accept-encoding": "gzip, br" },
              { expect: "100-continue" },
              { "x-sage-tier": "fast" },
            ]),
          );
        }
        return { ...mk("headers", base), headers: h };
      }
      case "content-type": {
        const h = this.headers({ "x-sage-tier": tier });
        const ct = rng.pick([
          undefined,
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          "application/xml",
          "application/json; charset=latin1",
          "garbage",
          "",
        ]);
        if (ct === undefined) delete h["content-type"];
        else h["content-type"] = ct;
        const body =
          rng.next() < 0.5
            ? JSON.stringify(base)
            : rng.pick(["model=x&prompt=y", "<xml/>", "--x\r\n\r\n--x--"]);
        return { ...mk(family, body), headers: h };
      }
      case "method":
        return mk(family, rng.next() < 0.5 ? JSON.stringify(base) : "", {
          method: rng.pick(["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]),
        });
      case "path":
        return mk(family, base, {
          path: rng.pick([
            `${path}/`,
            `${path}?x=1`,
            `${path}?${"q".repeat(2000)}=%zz`,
            `${path.toUpperCase()}`,
            `/${path}`,
            `${path}%00`,
            `${path}/../completions`,
            `${path}#frag`,
            "/v1",
            "/",
          ]),
        });
      default:
        return this.raw(endpoint, "POST", path);
    }
  }

  // ------------------------------------------------------------------ GET

  private get(endpoint: Endpoint): HttpCase {
    const rng = this.rng;
    let path = endpoint.slice(4);
    let known = false;
    if (endpoint === "GET /v1/sage/jobs/{id}") {
      known = this.cfg.jobIds.length > 0 && rng.next() < 0.4;
      path = `/v1/sage/jobs/${known ? rng.pick(this.cfg.jobIds) : this.jobId()}`;
    }
    const needsAuth = endpoint === "GET /v1/models" || endpoint === "GET /v1/sage/jobs/{id}";
    const mk = (family: string, extra: Partial<HttpCase> = {}): HttpCase => ({
      endpoint,
      family,
      method: "GET",
      path,
      headers: this.headers(),
      mustSucceed: false,
      ...extra,
    });
    const family = rng.pick(["valid", "method", "headers", "query", "body", "path", "raw-http"]);
    switch (family) {
      case "valid":
        return mk(family, {
          mustSucceed: endpoint !== "GET /v1/sage/jobs/{id}" || known,
        });
      case "method":
        return mk(family, {
          method: rng.pick(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]),
          body: rng.next() < 0.5 ? '{"model":"x"}' : "",
        });
      case "headers": {
        const h = this.headers();
        const v = rng.pick([
          undefined,
          "Bearer nope",
          "Bearer constructor",
          "Bearer __proto__",
          "Basic x",
          `Bearer ${this.cfg.limitedKey}`,
          "big",
        ]);
        if (v === undefined) delete h.authorization;
        else if (v === "big") h["x-big"] = "b".repeat(20_000);
        else h.authorization = v;
        return mk(family, {
          headers: h,
          mustSucceed: !needsAuth && v !== "big",
          mustFail: v === "big" || (needsAuth && v !== `Bearer ${this.cfg.limitedKey}`),
        });
      }
      case "query":
        return mk(family, {
          path: `${path}?${rng.pick(["a=1", "%zz", "x=%E0%A4%A", "q".repeat(3000), "__proto__[polluted]=1", "&&&", "a=b=c"])}`,
          mustSucceed: !needsAuth,
        });
      case "body":
        return mk(family, { body: rng.pick(["{oops", "x".repeat(rng.int(1, 100_000)), "[]"]) });
      case "path":
        return mk(family, {
          path: rng.pick([
            `${path}/`,
            `${path}/x`,
            `${path}//`,
            path.toUpperCase(),
            `${path}%2F`,
            `${path}/..`,
            `/${path}`,
          ]),
        });
      default:
        return this.raw(endpoint, "GET", path);
    }
  }

  private jobId(): string {
    const rng = this.rng;
    return rng.pick([
      "nope",
      `j-r-${rng.int(0, 1e9)}`,
      "%E0%A4%A",
      "%",
      "%zz",
      "%C0%AF",
      "%00",
      "%2e%2e",
      "x".repeat(rng.pick([100, 5000])),
      "__proto__",
      "constructor",
      "%F0%9F%98%80",
      encodeURIComponent("mödel / ü"),
    ]);
  }

  /** Malformed HTTP on a raw socket: what Node's parser refuses and what the URL parser chokes on. */
  private raw(endpoint: Endpoint, method: string, path: string): HttpCase {
    const rng = this.rng;
    const auth = `authorization: Bearer ${this.cfg.apiKey}\r\n`;
    const raw = rng.pick([
      `${method} http://[ HTTP/1.1\r\nhost: x\r\n${auth}connection: close\r\n\r\n`,
      `${method} http://[::1 HTTP/1.1\r\nhost: x\r\n${auth}connection: close\r\n\r\n`,
      `${method} ${path} HTTP/1.1\r\nhost: x\r\nbad header line\r\nconnection: close\r\n\r\n`,
      `${method} ${path} HTTP/9.9\r\nhost: x\r\nconnection: close\r\n\r\n`,
      `${method} ${path}\r\n\r\n`,
      `GARBAGE\r\n\r\n`,
      `${method} ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\nconnection: close\r\n\r\n`,
      `${method} ${path} HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n`,
      `${method} ${path} HTTP/1.1\r\nhost: x\r\nx: ${"y".repeat(20_000)}\r\nconnection: close\r\n\r\n`,
    ]);
    return { endpoint, family: "raw-http", method, path, headers: {}, raw, mustSucceed: false };
  }
}
