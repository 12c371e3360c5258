import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MESSAGES } from "./catalog.js";
import { decode, encode } from "./codec.js";
import { renderSubjectsDoc } from "./docs.js";
import { errorMessage } from "./errors.js";
import { envelope, validatePayload, validateReply } from "./message.js";
import { LoadReport, RouteRequest } from "./messages.js";

describe("message catalog", () => {
  it("declares every message once, with a unique name and subject template", () => {
    expect(new Set(MESSAGES.map((m) => m.name)).size).toBe(MESSAGES.length);
    expect(new Set(MESSAGES.map((m) => m.subject.template)).size).toBe(MESSAGES.length);
  });

  it.each(MESSAGES.map((m) => [m.name, m] as const))(
    "%s: its sample survives the wire and validates",
    (_n, def) => {
      const wire = decode(encode(envelope(def, def.sample() as object)));
      expect(wire.ok).toBe(true);
      const r = validatePayload(def, wire.ok ? wire.value : undefined);
      expect(r.ok, r.ok ? "" : r.error.message).toBe(true);
      if (def.reply) {
        const reply = validateReply(def, envelope(def, def.replySample!() as object));
        expect(reply.ok, reply.ok ? "" : reply.error.message).toBe(true);
      }
    },
  );

  it("every message has a doc line, publishers and listeners", () => {
    for (const m of MESSAGES) {
      expect(m.doc.length).toBeGreaterThan(10);
      expect(m.publishers.length).toBeGreaterThan(0);
      expect(m.listeners.length).toBeGreaterThan(0);
    }
  });

  it("docs/subjects.md is generated from the catalog and up to date (npm run docs:subjects)", () => {
    const onDisk = readFileSync(new URL("../../../docs/subjects.md", import.meta.url), "utf8");
    expect(onDisk).toBe(renderSubjectsDoc());
    for (const m of MESSAGES) expect(onDisk).toContain(`\`${m.subject.template}\``);
  });
});

describe("validation at the boundary", () => {
  const good = () => envelope(LoadReport, LoadReport.sample());

  it("rejects a newer version with VERSION, naming both versions", () => {
    const r = validatePayload(LoadReport, { ...good(), v: 2 });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe("VERSION");
      expect(r.error.message).toMatch(/version 2.*v1/);
    }
  });

  it("rejects a wrong field with SCHEMA, naming the field", () => {
    const r = validatePayload(LoadReport, { ...good(), kvUtilization: 1.7 });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe("SCHEMA");
      expect(r.error.message).toContain("kvUtilization");
    }
  });

  it("rejects non-maps with SCHEMA", () => {
    for (const v of [null, 3, "x", [1], new Uint8Array(2)]) {
      const r = validatePayload(LoadReport, v);
      expect(r.ok ? "ok" : r.error.code).toBe("SCHEMA");
    }
  });

  it("accepts unknown fields, so a field added in a newer minor release does not break older actors", () => {
    const r = validatePayload(LoadReport, { ...good(), addedLater: 1 });
    expect(r.ok && r.value).toMatchObject(LoadReport.sample());
  });

  it("fills schema defaults in", () => {
    const { stream: _omitted, ...rest } = RouteRequest.sample();
    const r = validatePayload(RouteRequest, envelope(RouteRequest, rest));
    expect(r.ok && r.value.stream).toBe(false);
  });

  it("names a missing field", () => {
    const { nodeId: _gone, ...rest } = LoadReport.sample();
    const r = validatePayload(LoadReport, envelope(LoadReport, rest));
    expect(r.ok ? "" : r.error.message).toContain("'nodeId'");
  });

  it("turns an error reply into a REMOTE error carrying the responder's code", () => {
    const r = validateReply(RouteRequest, { v: 1, error: { code: "UNKNOWN_MODEL", message: "no model x" } });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe("REMOTE");
      expect(r.error.details).toEqual({ code: "UNKNOWN_MODEL", message: "no model x" });
    }
  });

  it("decodes garbage into DECODE/TOO_LARGE values instead of throwing", () => {
    expect(decode(new Uint8Array([0x92, 0x01]))).toMatchObject({ ok: false, error: { code: "DECODE" } });
    expect(decode(new Uint8Array(0))).toMatchObject({ ok: false, error: { code: "DECODE" } });
    expect(decode(new Uint8Array(11), 10)).toMatchObject({ ok: false, error: { code: "TOO_LARGE" } });
  });
});

describe("errorMessage", () => {
  it("words an Error by its message and anything else thrown as a string", () => {
    expect(errorMessage(new Error("boom"))).toBe("boom");
    expect(errorMessage("plain")).toBe("plain");
    expect(errorMessage(42)).toBe("42");
    expect(errorMessage(undefined)).toBe("undefined");
  });
});
