import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo } from "node:net";
import { SageError } from "@sageserve/protocol";

/**
 * `server.listen` as a promise that fails with a typed CONFIG error naming the address (a port in
 * use, an address not on this machine) instead of crashing the process with an 'error' event.
 * Resolves with the port actually bound (port 0 = any free one).
 */
export function listen(server: Server, port: number, host: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      const why =
        e.code === "EADDRINUSE"
          ? "already in use"
          : e.code === "EADDRNOTAVAIL"
            ? "not an address of this machine"
            : e.message;
      reject(new SageError("CONFIG", `${what}: cannot listen on ${host}:${port}: ${why}`));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** `listen`, then the URL a local client uses (0.0.0.0 → 127.0.0.1). */
export async function listenUrl(server: Server, port: number, host: string, what: string): Promise<string> {
  const bound = await listen(server, port, host, what);
  return `http://${host !== "0.0.0.0" ? host : "127.0.0.1"}:${bound}`;
}

/** Close an HTTP server now: open keep-alive and streaming connections included. */
export function closeServer(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Read a request body up to `limitBytes`. Over the limit the rest is read and dropped (not the
 * connection), so the caller's 413 reaches the client instead of a reset.
 */
export function readBodyLimited(
  req: IncomingMessage,
  limitBytes: number,
): Promise<{ ok: true; body: string } | { ok: false; status: 400 | 413; message: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limitBytes) {
        resolve({ ok: false, status: 413, message: `request body larger than ${limitBytes} bytes` });
        req.removeListener("data", onData);
        req.resume();
        return;
      }
      chunks.push(c);
    };
    req.on("data", onData);
    req.on("end", () => {
      // Invalid UTF-8 is refused, not silently replaced by U+FFFD.
      try {
        resolve({ ok: true, body: utf8.decode(Buffer.concat(chunks)) });
      } catch {
        resolve({ ok: false, status: 400, message: "request body is not valid UTF-8" });
      }
    });
    req.on("error", () => resolve({ ok: false, status: 400, message: "request body could not be read" }));
  });
}
