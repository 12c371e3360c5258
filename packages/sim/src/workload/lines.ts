import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { gunzipSync } from "node:zlib";
import { errorMessage } from "@sageserve/protocol";
import { TraceError } from "./types.js";

const CHUNK_BYTES = 1 << 20;

/**
 * The lines of a file without their line ends (the n-th yielded is line n), read synchronously a megabyte at a time: memory stays constant however long
 * the file, and the simulator stays deterministic (no I/O callbacks racing the virtual clock).
 * `.gz` files are decompressed whole in memory — fine for rate and length files (tens of MB), not
 * for week-long traces (decompress those first).
 */
export function* readLines(path: string): Generator<string> {
  if (path.endsWith(".gz")) {
    yield* splitLines(readGzip(path));
    return;
  }
  const fd = open(path);
  const buf = Buffer.allocUnsafe(CHUNK_BYTES);
  const decoder = new StringDecoder("utf8");
  let rest = "";
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK_BYTES, null);
      if (n === 0) break;
      const text = rest + decoder.write(buf.subarray(0, n));
      let from = 0;
      for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", from)) {
        const end = nl > from && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
        yield text.slice(from, end);
        from = nl + 1;
      }
      rest = text.slice(from);
    }
    rest += decoder.end();
    if (rest.length) yield rest.endsWith("\r") ? rest.slice(0, -1) : rest;
  } finally {
    closeSync(fd);
  }
}

function* splitLines(text: string): Generator<string> {
  let from = 0;
  while (from < text.length) {
    let nl = text.indexOf("\n", from);
    if (nl < 0) nl = text.length;
    const end = nl > from && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
    yield text.slice(from, end);
    from = nl + 1;
  }
}

/** The first `bytes` of a file as text (format detection), decompressed if `.gz`. */
export function readHead(path: string, bytes = 64 * 1024): string {
  if (path.endsWith(".gz")) return readGzip(path).slice(0, bytes);
  const fd = open(path);
  try {
    const buf = Buffer.allocUnsafe(bytes);
    const n = readSync(fd, buf, 0, bytes, 0);
    return new StringDecoder("utf8").write(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
}

/** A whole (small) file as text: scenario and rate specs. */
export function readText(path: string): string {
  if (path.endsWith(".gz")) return readGzip(path);
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new TraceError(path, 0, "file", `cannot read: ${errorMessage(e)}`);
  }
}

function open(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    throw new TraceError(path, 0, "file", `cannot read: ${errorMessage(e)}`);
  }
}

function readGzip(path: string): string {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new TraceError(path, 0, "file", `cannot read: ${errorMessage(e)}`);
  }
  try {
    return gunzipSync(raw).toString("utf8");
  } catch (e) {
    throw new TraceError(path, 0, "file", `not a valid gzip file: ${errorMessage(e)}`);
  }
}
