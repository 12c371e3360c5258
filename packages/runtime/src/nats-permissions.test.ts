import { readFileSync } from "node:fs";
import { MESSAGES, NodeCommand, Plan, VmCommand } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import {
  AUTH_ROLES,
  CATALOG_ROLES,
  patternCovers,
  rolePermissions,
  rolePermits,
  updatePermissionsDoc,
} from "./nats-permissions.js";

describe("NATS permissions per role", () => {
  it("every subject of the message catalogue is published by some role and subscribed (or consumed) by some role", () => {
    for (const m of MESSAGES) {
      const subject = m.subject.pattern();
      const publishers = AUTH_ROLES.filter((r) => rolePermits(r, "publish", subject));
      const subscribers = AUTH_ROLES.filter((r) => rolePermits(r, "subscribe", subject));
      expect(publishers.length, `${m.name}: nobody may publish ${subject}`).toBeGreaterThan(0);
      expect(subscribers.length, `${m.name}: nobody may subscribe to ${subject}`).toBeGreaterThan(0);
    }
  });

  it("grants exactly what the catalogue declares: each declared publisher/listener may, undeclared actor roles may not", () => {
    for (const m of MESSAGES) {
      const subject = m.subject.pattern();
      for (const role of AUTH_ROLES) {
        const declaredPub = m.publishers.some((r) => CATALOG_ROLES[r].publish.includes(role));
        expect(rolePermits(role, "publish", subject), `${role} publish ${m.name}`).toBe(declaredPub);
        const declaredSub = m.listeners.some((r) => CATALOG_ROLES[r].subscribe.includes(role));
        const reads = role === "operator" || role === "admin"; // `nats sub 'sage.>'`
        // Durable messages reach their listeners through a JetStream consumer, not a subscription.
        expect(rolePermits(role, "subscribe", subject), `${role} subscribe ${m.name}`).toBe(
          reads || (declaredSub && !m.durable),
        );
      }
    }
  });

  it("keeps the roles apart: a node agent cannot plan, a gateway cannot command nodes or VMs, the operator publishes nothing of ours", () => {
    expect(rolePermits("node-agent", "publish", Plan.subject.build({}))).toBe(false);
    expect(rolePermits("planner", "publish", Plan.subject.build({}))).toBe(true);
    expect(rolePermits("gateway", "publish", NodeCommand.subject.build({ node: "n1" }))).toBe(false);
    expect(rolePermits("gateway", "publish", "sage.node.n1.infer")).toBe(false);
    expect(rolePermits("gateway", "publish", VmCommand.subject.build({ region: "eastus" }))).toBe(false);
    expect(rolePermits("region-agent", "publish", NodeCommand.subject.build({ node: "n1" }))).toBe(true);
    for (const s of rolePermissions("operator").publish) expect(s.startsWith("sage.")).toBe(false);
    expect(rolePermissions("operator").allowResponses).toBe(false);
    expect(rolePermissions("operator").publish.some((s) => s.startsWith("$KV."))).toBe(false);
    // The NIW work queue's messages cannot be consumed (removed) by the read-only roles.
    expect(rolePermits("operator", "publish", "$JS.API.CONSUMER.CREATE.SAGE_NIW")).toBe(false);
    expect(rolePermits("operator", "publish", "$JS.API.CONSUMER.CREATE.KV_sage-nodes")).toBe(true);
  });

  it("gives every actor role its inbox, its services API subjects and replies", () => {
    for (const role of AUTH_ROLES) {
      const p = rolePermissions(role);
      expect(p.subscribe).toContain(`_INBOX_${role}.>`);
      // Nobody reads everyone's replies, nor another role's.
      expect(rolePermits(role, "subscribe", "_INBOX.abc")).toBe(false);
      expect(rolePermits(role, "subscribe", `_INBOX_${role === "planner" ? "router" : "planner"}.abc`)).toBe(
        false,
      );
      if (role === "admin" || role === "operator") continue;
      expect(p.allowResponses).toBe(true);
      expect(rolePermits(role, "subscribe", "$SRV.PING")).toBe(true);
      expect(rolePermits(role, "subscribe", `$SRV.INFO.${role}`)).toBe(true);
      expect(rolePermits(role, "subscribe", "$SRV.INFO.someone-else")).toBe(false);
    }
  });

  it("matches subjects with NATS wildcard semantics, and rejects an unknown role", () => {
    expect(patternCovers("sage.>", "sage.plan")).toBe(true);
    expect(patternCovers("sage.>", "sage")).toBe(false);
    expect(patternCovers("sage.*.cmd", "sage.n1.cmd")).toBe(true);
    expect(patternCovers("sage.*.cmd", "sage.*.cmd")).toBe(true);
    expect(patternCovers("sage.*.cmd", "sage.>")).toBe(false);
    expect(patternCovers("sage.plan", "sage.plan.request")).toBe(false);
    expect(() => rolePermissions("root" as never)).toThrow(/unknown NATS role 'root'/);
  });
});

describe("docs/security.md", () => {
  it("shows the permissions table generated from this code (npm run docs:subjects)", () => {
    const onDisk = readFileSync(new URL("../../../docs/security.md", import.meta.url), "utf8");
    expect(onDisk).toBe(updatePermissionsDoc(onDisk));
  });
});
