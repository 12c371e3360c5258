import { readFileSync } from "node:fs";
import { MESSAGES, NodeCommand, Plan, VmCommand } from "@sageserve/protocol";
import { describe, expect, it } from "vitest";
import {
  AUTH_ROLES,
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

  it("grants exactly the table below: who may publish and who may subscribe to each message", () => {
    // Written out from the architecture (docs/architecture.md, docs/security.md), not computed from the
    // catalogue the code reads: a change to who may send or read a message has to change this table too.
    // admin and operator read everything (`nats sub 'sage.>'`); durable messages reach their actors through
    // a JetStream consumer, not a subscription.
    const READERS = ["admin", "operator"];
    const table: Record<string, [publish: string[], subscribe: string[]]> = {
      RouteRequest: [["gateway"], ["router"]],
      InferenceRequest: [["router", "region-agent"], ["node-agent"]],
      RunCheck: [["region-agent"], ["node-agent"]],
      InferenceChunk: [["router", "node-agent"], ["gateway"]],
      RequestCancel: [["gateway"], ["router", "node-agent", "region-agent"]],
      QuotaUsage: [["gateway"], ["gateway"]],
      RequestDone: [
        ["router", "node-agent"],
        ["router", "region-agent", "dashboard"],
      ],
      LoadReport: [["node-agent"], ["planner", "router", "region-agent", "dashboard"]],
      Heartbeat: [["node-agent"], ["router", "gateway", "dashboard"]],
      InstanceTransition: [["node-agent"], []],
      NodeCommand: [["region-agent", "admin"], ["node-agent"]],
      VmCommand: [["region-agent"], ["vm-provider"]],
      Plan: [["planner"], ["router", "region-agent", "dashboard"]],
      PlanRequest: [["admin"], ["planner"]],
      DemandReport: [["router"], ["planner", "region-agent"]],
      CapacityWanted: [["router"], ["region-agent", "dashboard"]],
      RegionStatus: [["region-agent"], ["planner", "dashboard"]],
      NiwJob: [["router"], []],
      JobUpdate: [
        ["region-agent", "node-agent"],
        ["gateway", "dashboard"],
      ],
    };
    expect(Object.keys(table).sort()).toEqual(MESSAGES.map((m) => m.name).sort());
    for (const m of MESSAGES) {
      const subject = m.subject.pattern();
      const [pub, sub] = table[m.name]!;
      for (const role of AUTH_ROLES) {
        expect(rolePermits(role, "publish", subject), `${role} publish ${m.name}`).toBe(pub.includes(role));
        expect(rolePermits(role, "subscribe", subject), `${role} subscribe ${m.name}`).toBe(
          sub.includes(role) || READERS.includes(role),
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
