import type { IncomingMessage } from "node:http";

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
    req.on("end", () => resolve({ ok: true, body: Buffer.concat(chunks).toString("utf8") }));
    req.on("error", () => resolve({ ok: false, status: 400, message: "request body could not be read" }));
  });
}
