import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { SageError } from "@sageserve/protocol";
import { readBodyLimited } from "@sageserve/runtime";

/** An answer in OpenAI's error shape: status, message, type, code, optional param and Retry-After. */
export interface HttpError {
  status: number;
  message: string;
  type: string;
  code: string;
  param?: string;
  retryAfterS?: number;
}

/** Known paths and the one method each takes (others: 405 with `Allow`). */
export const ROUTES: Record<string, string> = {
  "/v1/chat/completions": "POST",
  "/v1/completions": "POST",
  "/v1/models": "GET",
  "/health": "GET",
  "/metrics": "GET",
};

export function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

/** Answer `e` in OpenAI's error shape (or cut a response already under way); returns the status. */
export function fail(res: ServerResponse, e: HttpError): number {
  if (res.headersSent) {
    res.destroy();
    return e.status;
  }
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (e.retryAfterS !== undefined) headers["retry-after"] = String(e.retryAfterS);
  res
    .writeHead(e.status, headers)
    .end(
      JSON.stringify({ error: { message: e.message, type: e.type, param: e.param ?? null, code: e.code } }),
    );
  return e.status;
}

/**
 * Is the body one the gateway can read: JSON (no content type, or `application/json` / `…+json`), in
 * UTF-8, not compressed? Else 415 naming what is not supported — a gzip body used to be a 400
 * "invalid JSON", and JSON under `text/plain` was accepted.
 */
export function checkContent(headers: {
  "content-type"?: string | undefined;
  "content-encoding"?: string | undefined;
}): HttpError | undefined {
  const encoding = headers["content-encoding"]?.trim().toLowerCase();
  if (encoding && encoding !== "identity")
    return {
      status: 415,
      message: `content-encoding ${encoding} is not supported: send the body uncompressed`,
      type: "invalid_request_error",
      code: "unsupported_encoding",
    };
  const ct = headers["content-type"];
  if (ct === undefined || ct.trim() === "") return undefined;
  const [type, ...params] = ct.split(";").map((p) => p.trim().toLowerCase());
  const json = type === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(type ?? "");
  const charset = params
    .find((p) => p.startsWith("charset="))
    ?.slice(8)
    .replace(/"/g, "");
  if (json && (charset === undefined || charset === "utf-8" || charset === "utf8")) return undefined;
  return {
    status: 415,
    message: json
      ? `charset ${charset} is not supported: send UTF-8`
      : `content-type ${ct} is not supported: send application/json`,
    type: "invalid_request_error",
    code: "unsupported_media_type",
  };
}

/** CORS: any origin may call (keys are bearer tokens, not cookies); these headers are allowed. */
export const CORS_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, POST, OPTIONS",
  "access-control-allow-headers":
    "authorization, content-type, x-sage-tier, x-sage-region, openai-organization, openai-project, x-stainless-arch, x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout",
  "access-control-max-age": "86400",
};

export async function readBody(req: IncomingMessage, limit: number): Promise<string | HttpError> {
  const r = await readBodyLimited(req, limit);
  if (r.ok) return r.body;
  return {
    status: r.status,
    message: r.message,
    type: "invalid_request_error",
    code: r.status === 413 ? "request_too_large" : "bad_body",
  };
}

/** A router's refusal as the client's HTTP answer. */
export function routeError(e: SageError, model: string): HttpError {
  const code = (e.details as { code?: string } | undefined)?.code ?? e.code;
  if (code === "UNKNOWN_MODEL")
    return {
      status: 404,
      message: `The model \`${model}\` does not exist.`,
      type: "invalid_request_error",
      code: "model_not_found",
      param: "model",
    };
  if (code === "INVALID_REQUEST" || code === "SCHEMA" || code === "SUBJECT")
    return { status: 400, message: e.message, type: "invalid_request_error", code: "invalid_value" };
  if (code === "TOO_LARGE")
    return { status: 413, message: e.message, type: "invalid_request_error", code: "request_too_large" };
  // No router answered, or no capacity: the client should come back shortly.
  return {
    status: 503,
    message: `no capacity for ${model} right now (${code})`,
    type: "service_unavailable",
    code: "overloaded",
    retryAfterS: 2,
  };
}

/**
 * Requests Node's HTTP parser refuses (oversized headers, malformed lines) get the OpenAI error shape
 * too, instead of a bare status line. Returns the status written (undefined: the socket was dropped).
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket): number | undefined {
  // As Node's own handler: never write into a response already under way on this socket.
  const inFlight = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || err.code === "ECONNRESET" || inFlight?.headersSent) {
    socket.destroy();
    return undefined;
  }
  const status = err.code === "HPE_HEADER_OVERFLOW" ? 431 : 400;
  const body = JSON.stringify({
    error: {
      message:
        status === 431
          ? "request headers too large"
          : `malformed HTTP request (${err.code ?? "parse error"})`,
      type: "invalid_request_error",
      param: null,
      code: status === 431 ? "headers_too_large" : "bad_request",
    },
  });
  socket.end(
    `HTTP/1.1 ${status} ${status === 431 ? "Request Header Fields Too Large" : "Bad Request"}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
  return status;
}
