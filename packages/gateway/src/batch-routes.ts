import type { IncomingMessage, ServerResponse } from "node:http";
import { type Batches, batchView } from "./batches.js";
import type { FileStore } from "./files.js";
import { readUpload } from "./files.js";
import { fail, type HttpError, json } from "./http.js";

/**
 * HTTP routes of the Files and Batch APIs (`/v1/files…`, `/v1/batches…`). Undefined: not one of them
 * (the gateway's other routes answer); a number: answered here with that status.
 */
export async function answerBatchApi(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  api: {
    files: FileStore;
    batches: Batches;
    maxFileBytes: number;
    readJson(req: IncomingMessage): Promise<{ value: Record<string, unknown> } | HttpError>;
  },
): Promise<number | undefined> {
  const m = req.method ?? "GET";
  const notAllowed = (allowed: string): number => {
    res.setHeader("allow", allowed);
    return fail(res, {
      status: 405,
      message: `${m} is not allowed on ${path} (allowed: ${allowed})`,
      type: "invalid_request_error",
      code: "method_not_allowed",
    });
  };
  const notFound = (what: string, id: string, code: string): number =>
    fail(res, { status: 404, message: `no ${what} ${id}`, type: "invalid_request_error", code });
  const ok = (body: unknown): number => {
    json(res, 200, body);
    return 200;
  };
  const url = new URL(req.url ?? "/", "http://x");
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
  const [, kind, id, action] = seg;
  if (kind === "files") {
    if (id === undefined) {
      if (m === "POST") {
        const up = await readUpload(req, api.maxFileBytes);
        if ("status" in up) return fail(res, up);
        return ok(await api.files.put(up.filename, up.purpose, up.data));
      }
      if (m !== "GET") return notAllowed("GET, POST");
      const purpose = url.searchParams.get("purpose") ?? undefined;
      const data = await api.files.list(purpose);
      return ok({
        object: "list",
        data,
        has_more: false,
        first_id: data[0]?.id ?? null,
        last_id: data.at(-1)?.id ?? null,
      });
    }
    if (action === undefined) {
      if (m === "DELETE")
        return (await api.files.delete(id))
          ? ok({ id, object: "file", deleted: true })
          : notFound("file", id, "file_not_found");
      if (m !== "GET") return notAllowed("GET, DELETE");
      const f = await api.files.get(id);
      return f ? ok(f) : notFound("file", id, "file_not_found");
    }
    if (action !== "content") return undefined;
    if (m !== "GET") return notAllowed("GET");
    const bytes = await api.files.content(id);
    if (!bytes) return notFound("file", id, "file_not_found");
    res
      .writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.length })
      .end(bytes);
    return 200;
  }
  if (id === undefined) {
    if (m === "POST") {
      const body = await api.readJson(req);
      if ("status" in body) return fail(res, body);
      const r = await api.batches.create(body.value);
      if ("message" in r) return fail(res, r);
      return ok(r.body);
    }
    if (m !== "GET") return notAllowed("GET, POST");
    const limit = Number(url.searchParams.get("limit") ?? 20);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      return fail(res, {
        status: 400,
        message: "limit must be an integer from 1 to 100",
        type: "invalid_request_error",
        code: "invalid_value",
        param: "limit",
      });
    return ok(await api.batches.list(limit, url.searchParams.get("after") ?? undefined));
  }
  if (action === undefined) {
    if (m !== "GET") return notAllowed("GET");
    const b = await api.batches.get(id);
    return b ? ok(batchView(b)) : notFound("batch", id, "batch_not_found");
  }
  if (action !== "cancel") return undefined;
  if (m !== "POST") return notAllowed("POST");
  const c = await api.batches.cancel(id);
  if (c === undefined) return notFound("batch", id, "batch_not_found");
  if ("message" in c) return fail(res, c);
  return ok(batchView(c));
}
