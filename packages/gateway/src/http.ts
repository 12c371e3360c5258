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
