import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { errorMessage } from "@sageserve/protocol";
import type { Bus } from "@sageserve/runtime";
import type { HttpError } from "./http.js";

/** KV bucket of file metadata (the OpenAI File object) and object store bucket of the bytes. */
export const FILES_BUCKET = "sage-files";

/** Purposes a file may be uploaded for; only `batch` files feed `POST /v1/batches`. */
const PURPOSES = new Set(["batch", "batch_output", "user_data"]);

/** The OpenAI File object (`GET /v1/files/{id}`). */
export interface FileObject {
  id: string;
  object: "file";
  bytes: number;
  created_at: number;
  filename: string;
  purpose: string;
  status: "processed";
  expires_at: number | null;
}

const bad = (message: string, param?: string, code = "invalid_value"): HttpError => ({
  status: 400,
  message,
  type: "invalid_request_error",
  code,
  ...(param ? { param } : {}),
});

/** A file id as this API hands them out (anything else is no file, and never reaches NATS). */
const FILE_ID = /^file-[A-Za-z0-9_-]{1,120}$/;

export function newFileId(): string {
  return `file-${randomBytes(12).toString("hex")}`;
}

/**
 * The Files API over the bus: metadata in KV `sage-files`, bytes in the object store of the same name
 * (JetStream), so any gateway serves any file and a restarted one forgets none.
 */
export class FileStore {
  constructor(
    private readonly bus: Pick<
      Bus,
      "kvPut" | "kvGet" | "kvEntries" | "kvDelete" | "objPut" | "objGet" | "objDelete"
    >,
    private readonly nowS: () => number,
  ) {}

  async put(filename: string, purpose: string, data: Uint8Array, id = newFileId()): Promise<FileObject> {
    const file: FileObject = {
      id,
      object: "file",
      bytes: data.length,
      created_at: this.nowS(),
      filename,
      purpose,
      status: "processed",
      expires_at: null,
    };
    // Bytes first: a file listed is a file that can be read.
    await this.bus.objPut(FILES_BUCKET, id, data);
    await this.bus.kvPut(FILES_BUCKET, id, file);
    return file;
  }

  async get(id: string): Promise<FileObject | undefined> {
    if (!FILE_ID.test(id)) return undefined;
    const v = await this.bus.kvGet(FILES_BUCKET, id);
    return typeof v === "object" && v !== null ? (v as FileObject) : undefined;
  }

  async content(id: string): Promise<Uint8Array | undefined> {
    if (!(await this.get(id))) return undefined;
    return this.bus.objGet(FILES_BUCKET, id);
  }

  async list(purpose?: string): Promise<FileObject[]> {
    const all = [...(await this.bus.kvEntries(FILES_BUCKET)).values()] as FileObject[];
    return all
      .filter((f) => purpose === undefined || f.purpose === purpose)
      .sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : 1));
  }

  async delete(id: string): Promise<boolean> {
    if (!(await this.get(id))) return false;
    await this.bus.kvDelete(FILES_BUCKET, id);
    await this.bus.objDelete(FILES_BUCKET, id);
    return true;
  }
}

/**
 * `POST /v1/files` as the SDKs send it: multipart/form-data with a `purpose` field and a `file` part.
 * The body is read up to `limit` bytes (413 past it) and parsed by the platform's FormData parser.
 */
export async function readUpload(
  req: IncomingMessage,
  limit: number,
): Promise<{ filename: string; purpose: string; data: Uint8Array } | HttpError> {
  const type = req.headers["content-type"] ?? "";
  if (!/^multipart\/form-data\s*;/i.test(type))
    return {
      status: 415,
      message: `upload a file as multipart/form-data (fields: purpose, file), not '${type || "no content type"}'`,
      type: "invalid_request_error",
      code: "unsupported_media_type",
    };
  const raw = await readRaw(req, limit);
  if (!Buffer.isBuffer(raw)) return raw as HttpError;
  let form: FormData;
  try {
    form = await new Request("http://upload/", {
      method: "POST",
      headers: { "content-type": type },
      body: raw,
    }).formData();
  } catch (e) {
    return bad(`the multipart body could not be parsed: ${errorMessage(e)}`, undefined, "invalid_multipart");
  }
  const purpose = form.get("purpose");
  if (typeof purpose !== "string" || !PURPOSES.has(purpose))
    return bad(`purpose must be one of ${[...PURPOSES].join(", ")}, not '${String(purpose)}'`, "purpose");
  const file = form.get("file");
  if (file === null || typeof file === "string")
    return bad("a 'file' part with the file's content is required", "file");
  const data = new Uint8Array(await file.arrayBuffer());
  if (data.length === 0) return bad("the file is empty", "file");
  return { filename: file.name || "upload.jsonl", purpose, data };
}

function readRaw(req: IncomingMessage, limit: number): Promise<Buffer | HttpError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        req.removeListener("data", onData);
        req.resume();
        resolve({
          status: 413,
          message: `file upload larger than ${limit} bytes`,
          type: "invalid_request_error",
          code: "file_too_large",
        });
        return;
      }
      chunks.push(c);
    };
    req.on("data", onData);
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", () => resolve(bad("upload could not be read", undefined, "bad_body")));
  });
}
