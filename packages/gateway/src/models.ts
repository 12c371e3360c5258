import type { IncomingMessage, ServerResponse } from "node:http";
import { fail, json } from "./http.js";

const modelCard = (id: string) => ({ id, object: "model", created: 0, owned_by: "sageserve" });

/**
 * `GET /v1/models` and `GET /v1/models/{id}` (404 `model_not_found` for a model not offered). Undefined:
 * not a models route; a number: answered with that status.
 */
export function answerModels(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  models: readonly string[],
): number | undefined {
  if (req.method === "GET" && path === "/v1/models") {
    json(res, 200, { object: "list", data: models.map(modelCard) });
    return 200;
  }
  const m = /^\/v1\/models\/(.+)$/.exec(path);
  if (!m) return undefined;
  const raw = m[1]!;
  if (req.method !== "GET") {
    res.setHeader("allow", "GET");
    return fail(res, {
      status: 405,
      message: `${req.method} is not allowed on /v1/models/{id} (allowed: GET)`,
      type: "invalid_request_error",
      code: "method_not_allowed",
    });
  }
  let id: string | undefined;
  try {
    id = decodeURIComponent(raw);
  } catch {
    // malformed percent-encoding: no such model
  }
  if (id === undefined || !models.includes(id))
    return fail(res, {
      status: 404,
      message: `The model \`${id ?? raw}\` does not exist.`,
      type: "invalid_request_error",
      code: "model_not_found",
      param: "model",
    });
  json(res, 200, modelCard(id));
  return 200;
}
