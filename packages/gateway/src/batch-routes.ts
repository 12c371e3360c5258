import type { IncomingMessage, ServerResponse } from "node:http";
import { type Batches, batchView } from "./batches.js";
import type { FileStore } from "./files.js";
import { readUpload } from "./files.js";
import { fail, type HttpError, json } from "./http.js";

interface BatchApi {
  files: FileStore;
  batches: Batches;
  maxFileBytes: number;
  readJson(req: IncomingMessage): Promise<{ value: Record<string, unknown> } | HttpError>;
}

/** One request on these routes: its method, query, and the answers every route gives. */
interface Call {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  query: URLSearchParams;
  ok(body: unknown): number;
  notAllowed(allowed: string): number;
  notFound(what: string, id: string, code: string): number;
}

/**
 * HTTP routes of the Files and Batch APIs (`/v1/files…`, `/v1/batches…`). Undefined: not one of them
 * (the gateway's other routes answer); a number: answered here with that status.
 */
export async function answerBatchApi(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  api: BatchApi,
): Promise<number | undefined> {
  const seg = path
    .split("/")
    .slice(1)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  // ["v1", "files" | "batches", id?, action?]
  if (seg[0] !== "v1" || (seg[1] !== "files" && seg[1] !== "batches") || seg.length > 4) return undefined;
  const method = req.method ?? "GET";
  const call: Call = {
    req,
    res,
    method,
    query: new URL(req.url ?? "/", "http://x").searchParams,
    ok(body) {
      json(res, 200, body);
      return 200;
    },
    notAllowed(allowed) {
      res.setHeader("allow", allowed);
      return fail(res, {
        status: 405,
        message: `${method} is not allowed on ${path} (allowed: ${allowed})`,
        type: "invalid_request_error",
        code: "method_not_allowed",
      });
    },
    notFound: (what, id, code) =>
      fail(res, { status: 404, message: `no ${what} ${id}`, type: "invalid_request_error", code }),
  };
  const [, kind, id, action] = seg;
  return kind === "files" ? filesRoute(call, api, id, action) : batchesRoute(call, api, id, action);
}

async function filesRoute(c: Call, api: BatchApi, id?: string, action?: string): Promise<number | undefined> {
  if (id === undefined) {
    if (c.method === "POST") {
      const up = await readUpload(c.req, api.maxFileBytes);
      if ("status" in up) return fail(c.res, up);
      return c.ok(await api.files.put(up.filename, up.purpose, up.data));
    }
    if (c.method !== "GET") return c.notAllowed("GET, POST");
    const data = await api.files.list(c.query.get("purpose") ?? undefined);
    return c.ok({
      object: "list",
      data,
      has_more: false,
      first_id: data[0]?.id ?? null,
      last_id: data.at(-1)?.id ?? null,
    });
  }
  if (action === undefined) {
    if (c.method === "DELETE")
      return (await api.files.delete(id))
        ? c.ok({ id, object: "file", deleted: true })
        : c.notFound("file", id, "file_not_found");
    if (c.method !== "GET") return c.notAllowed("GET, DELETE");
    const f = await api.files.get(id);
    return f ? c.ok(f) : c.notFound("file", id, "file_not_found");
  }
  if (action !== "content") return undefined;
  if (c.method !== "GET") return c.notAllowed("GET");
  const bytes = await api.files.content(id);
  if (!bytes) return c.notFound("file", id, "file_not_found");
  c.res
    .writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length })
    .end(bytes);
  return 200;
}

async function batchesRoute(
  c: Call,
  api: BatchApi,
  id?: string,
  action?: string,
): Promise<number | undefined> {
  if (id === undefined) {
    if (c.method === "POST") {
      const body = await api.readJson(c.req);
      if ("status" in body) return fail(c.res, body);
      const r = await api.batches.create(body.value);
      if ("message" in r) return fail(c.res, r);
      return c.ok(r.body);
    }
    if (c.method !== "GET") return c.notAllowed("GET, POST");
    const limit = Number(c.query.get("limit") ?? 20);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      return fail(c.res, {
        status: 400,
        message: "limit must be an integer from 1 to 100",
        type: "invalid_request_error",
        code: "invalid_value",
        param: "limit",
      });
    return c.ok(await api.batches.list(limit, c.query.get("after") ?? undefined));
  }
  if (action === undefined) {
    if (c.method !== "GET") return c.notAllowed("GET");
    const b = await api.batches.get(id);
    return b ? c.ok(batchView(b)) : c.notFound("batch", id, "batch_not_found");
  }
  if (action !== "cancel") return undefined;
  if (c.method !== "POST") return c.notAllowed("POST");
  const r = await api.batches.cancel(id);
  if (r === undefined) return c.notFound("batch", id, "batch_not_found");
  if ("message" in r) return fail(c.res, r);
  return c.ok(batchView(r));
}
