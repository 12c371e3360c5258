import { z } from "zod";
import { MESSAGES } from "./catalog.js";
import type { MessageDef } from "./message.js";

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  additionalProperties?: JsonSchema | boolean;
};

function typeOf(s: JsonSchema): string {
  if (s.enum) return s.enum.map((e) => JSON.stringify(e)).join(" \\| ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.anyOf) return s.anyOf.map(typeOf).join(" \\| ");
  if (s.type === "array") return `${s.items ? typeOf(s.items) : "unknown"}[]`;
  if (s.type === "object" && s.properties) {
    return `{ ${Object.keys(s.properties).join(", ")} }`;
  }
  if (s.type === "object") return "map";
  return Array.isArray(s.type) ? s.type.join(" \\| ") : (s.type ?? "any");
}

function fieldsTable(schema: z.ZodType): string[] {
  const js = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JsonSchema;
  const rows = [
    "| field | type | required |",
    "| --- | --- | --- |",
    "| `v` | integer (message version) | yes |",
  ];
  for (const [k, v] of Object.entries(js.properties ?? {})) {
    rows.push(`| \`${k}\` | ${typeOf(v)} | ${js.required?.includes(k) ? "yes" : "no"} |`);
  }
  return rows;
}

function section(m: MessageDef): string[] {
  const lines = [
    `## ${m.name} (v${m.version})`,
    "",
    m.doc,
    "",
    `- subject: \`${m.subject.template}\``,
    `- kind: ${m.kind}${m.durable ? " (durable, JetStream)" : ""}`,
    `- published by: ${m.publishers.join(", ")}`,
    `- listened to by: ${m.listeners.join(", ")}${m.queueGroup ? ` (queue group \`${m.queueGroup}\`)` : ""}`,
    "",
    ...fieldsTable(m.schema),
  ];
  if (m.reply) {
    lines.push(
      "",
      "Reply (or an `ErrorReply` `{ v, error: { code, message } }`):",
      "",
      ...fieldsTable(m.reply),
    );
  }
  lines.push("");
  return lines;
}

/** The full text of docs/subjects.md, generated from the catalog. */
export function renderSubjectsDoc(): string {
  const index = [
    "| message | subject | kind | publishers → listeners |",
    "| --- | --- | --- | --- |",
    ...MESSAGES.map(
      (m) =>
        `| [${m.name}](#${m.name.toLowerCase()}-v${m.version}) | \`${m.subject.template}\` | ${m.kind} | ${m.publishers.join(", ")} → ${m.listeners.join(", ")} |`,
    ),
  ];
  return [
    "# Subjects and messages",
    "",
    "<!-- Generated from packages/protocol/src/catalog.ts by `npm run docs:subjects`; a test fails when this file is stale. -->",
    "",
    "Every NATS subject SageServe uses. Payloads are MessagePack maps (msgpackr, no shared record",
    "structures) carrying a `v` field with the message version. `{param}` is one subject token; values",
    "outside `[A-Za-z0-9_-]` are escaped as `~xx` per UTF-8 byte (`llama-3.1-8b` → `llama-3~2e1-8b`).",
    "A payload that fails to decode, carries another version or breaks the schema is rejected with a",
    "typed error (`DECODE`, `VERSION`, `SCHEMA`, `TOO_LARGE`) and counted per subject by the receiving",
    "actor; requests get an `ErrorReply`. Nothing is thrown into actor code.",
    "",
    ...index,
    "",
    ...MESSAGES.flatMap(section),
  ].join("\n");
}
