import { MESSAGES, type MessageDef, NIW_STREAM, type Role, SageError } from "@sageserve/protocol";

/**
 * Who may publish and subscribe where on NATS — the one table the server config
 * (`renderNatsAuthConfig`, `scripts/gen-nats-auth.ts`, `sageserve up`, docker-compose) is made of.
 *
 * The SageServe subjects come from the message catalogue: a role publishes a message's subject when the
 * catalogue names it a publisher and subscribes to it when it names it a listener (`CATALOG_ROLES`
 * maps the catalogue's roles onto credentials). What NATS itself needs — request/reply inboxes, the
 * services API (`$SRV`), JetStream (KV buckets, the NIW work queue, acks) — is listed per role in
 * `INFRA` below, derived from what each actor does (`Actor`, `NatsBus`).
 */
export const AUTH_ROLES = [
  "planner",
  "router",
  "region-agent",
  "vm-provider",
  "node-agent",
  "gateway",
  "dashboard",
  /** `sageserve drain`, `sageserve up`'s first plan request: the operator's reads plus node commands. */
  "admin",
  /** Read only: `sageserve status`, `nats sub`, `nats micro ls|info|stats`, `nats kv get|ls`, `nats stream info`. */
  "operator",
] as const;

export type AuthRole = (typeof AUTH_ROLES)[number];

export interface RolePermissions {
  publish: string[];
  subscribe: string[];
  /** Reply once to each request received (its reply subject, whatever it is). */
  allowResponses: boolean;
}

/** Catalogue roles → credentials. `simulator` runs on virtual time, never on NATS. */
export const CATALOG_ROLES: Record<Role, { publish: AuthRole[]; subscribe: AuthRole[] }> = {
  gateway: { publish: ["gateway"], subscribe: ["gateway"] },
  router: { publish: ["router"], subscribe: ["router"] },
  "region-agent": { publish: ["region-agent"], subscribe: ["region-agent"] },
  planner: { publish: ["planner"], subscribe: ["planner"] },
  "node-agent": { publish: ["node-agent"], subscribe: ["node-agent"] },
  "vm-provider": { publish: ["vm-provider"], subscribe: ["vm-provider"] },
  dashboard: { publish: ["dashboard"], subscribe: ["dashboard"] },
  cli: { publish: ["admin"], subscribe: ["admin", "operator"] },
  auditor: { publish: [], subscribe: ["operator"] },
  simulator: { publish: [], subscribe: [] },
};

/** The service name each role registers (`nats micro ls`). */
const SERVICE: Partial<Record<AuthRole, string>> = {
  planner: "planner",
  router: "router",
  "region-agent": "region-agent",
  "vm-provider": "vm-provider",
  "node-agent": "node-agent",
  gateway: "gateway",
  dashboard: "dashboard",
};

const JS = "$JS.API";

/**
 * Each role receives replies on inboxes of its own (`_INBOX_<role>.…`, the client's `inboxPrefix`), so
 * no role can read the replies to another's requests. The `nats` CLI: `--inbox-prefix _INBOX_operator`.
 */
export const inboxPrefix = (role: AuthRole): string => `_INBOX_${role}`;
/** The KV buckets the actors keep (permission wildcards match whole tokens, so each is named). */
export const KV_BUCKETS = [
  "sage-plans",
  "sage-nodes",
  "sage-regions",
  "sage-observer",
  "sage-boots",
  "sage-jobs",
  "sage-files",
  "sage-batches",
  "sage-batch-out",
] as const;

/** The object store bucket of batch input and output files (`POST /v1/files`). */
export const FILES_OBJECT_STORE = "sage-files";

/** Write a KV bucket (and read it back): create/bind its stream, put, get. */
const kvWrite = (b: string): string[] => [`$KV.${b}.>`, ...kvBind(b)];
/** Read a KV bucket the way `NatsBus.kvGet` does: it binds, or creates the bucket when it is the first. */
const kvBind = (b: string): string[] => [...kvRead(b), `${JS}.STREAM.CREATE.KV_${b}`];
/** Read a KV bucket: bind, get by key (direct or stream message get). `NatsBus.kvGet` also creates it. */
const kvRead = (b: string): string[] => [
  `${JS}.STREAM.INFO.KV_${b}`,
  `${JS}.DIRECT.GET.KV_${b}`,
  `${JS}.DIRECT.GET.KV_${b}.>`,
  `${JS}.STREAM.MSG.GET.KV_${b}`,
];
/** List a bucket's keys (`kvEntries`, `nats kv ls`): an ephemeral ordered consumer on its stream. */
const kvList = (b: string): string[] => [
  ...kvRead(b),
  `${JS}.CONSUMER.CREATE.KV_${b}`,
  `${JS}.CONSUMER.CREATE.KV_${b}.>`,
  `${JS}.CONSUMER.DELETE.KV_${b}.*`,
  `${JS}.CONSUMER.INFO.KV_${b}.*`,
];
/**
 * Write and read an object store bucket: its stream (create, purge on delete), chunk and meta subjects,
 * and the ordered consumer a read uses (with its flow control).
 */
const objWrite = (b: string): string[] => [
  `$O.${b}.>`,
  // the object store view looks its stream up by subject
  `${JS}.STREAM.NAMES`,
  `${JS}.STREAM.INFO.OBJ_${b}`,
  `${JS}.STREAM.CREATE.OBJ_${b}`,
  `${JS}.STREAM.PURGE.OBJ_${b}`,
  `${JS}.STREAM.MSG.GET.OBJ_${b}`,
  `${JS}.DIRECT.GET.OBJ_${b}`,
  `${JS}.DIRECT.GET.OBJ_${b}.>`,
  `${JS}.CONSUMER.CREATE.OBJ_${b}`,
  `${JS}.CONSUMER.CREATE.OBJ_${b}.>`,
  `${JS}.CONSUMER.DELETE.OBJ_${b}.*`,
  `${JS}.CONSUMER.INFO.OBJ_${b}.*`,
  "$JS.FC.>",
];
const niw = NIW_STREAM.name;
/** Bind or create the NIW work-queue stream (its subjects come from the catalogue: NiwJob). */
const niwStream = [`${JS}.STREAM.INFO.${niw}`, `${JS}.STREAM.CREATE.${niw}`];

/** Reads the operator needs for `status` and the `nats` CLI: service discovery, stream/KV info and reads. */
const OPERATOR_READS = [
  "$SRV.PING",
  "$SRV.PING.>",
  "$SRV.INFO",
  "$SRV.INFO.>",
  "$SRV.STATS",
  "$SRV.STATS.>",
  `${JS}.INFO`,
  `${JS}.STREAM.NAMES`,
  `${JS}.STREAM.LIST`,
  `${JS}.STREAM.INFO.*`,
  `${JS}.CONSUMER.NAMES.*`,
  `${JS}.CONSUMER.LIST.*`,
  `${JS}.CONSUMER.INFO.*.*`,
  `${JS}.DIRECT.GET.>`,
  `${JS}.STREAM.MSG.GET.*`,
  // Listing keys (`nats kv ls`, `status`) needs a throw-away consumer; only on the KV streams, whose
  // messages a consumer cannot remove (the NIW work queue is not readable this way).
  ...KV_BUCKETS.flatMap(kvList),
  // Flow control of those ordered consumers.
  "$JS.FC.>",
];

/** NATS plumbing per role (beyond the catalogue's subjects). */
const INFRA: Record<AuthRole, { publish: string[]; subscribe: string[] }> = {
  planner: { publish: [`${JS}.INFO`, ...kvWrite("sage-plans")], subscribe: [] },
  // reads the latest plan at start (a restarted router follows it at once)
  router: { publish: [`${JS}.INFO`, ...niwStream, ...kvBind("sage-plans")], subscribe: [] },
  "region-agent": {
    publish: [
      `${JS}.INFO`,
      ...kvWrite("sage-regions"),
      ...kvWrite("sage-boots"), // boots accepted but not yet reported, read back by a restarted agent
      ...kvBind("sage-plans"), // reads the latest plan at start
      ...niwStream,
      `${JS}.CONSUMER.INFO.${niw}.*`,
      `${JS}.CONSUMER.CREATE.${niw}.>`,
      `${JS}.CONSUMER.DURABLE.CREATE.${niw}.*`,
      `${JS}.CONSUMER.MSG.NEXT.${niw}.*`,
      // ack, nak and "working" on the jobs it holds
      `$JS.ACK.${niw}.>`,
    ],
    subscribe: [],
  },
  "vm-provider": { publish: [], subscribe: [] },
  // its liveness; the result of each Batch API request it runs, stored before the job is acknowledged
  "node-agent": {
    publish: [`${JS}.INFO`, ...kvWrite("sage-nodes"), ...kvWrite("sage-batch-out")],
    subscribe: [],
  },
  // batch job views, so any gateway answers for any job; the Files and Batch APIs' state and files
  gateway: {
    publish: [
      `${JS}.INFO`,
      ...kvWrite("sage-jobs"),
      ...kvWrite("sage-files"),
      ...kvWrite("sage-batches"),
      ...kvWrite("sage-batch-out"),
      ...kvList("sage-batch-out"),
      ...kvList("sage-batches"),
      ...kvList("sage-files"),
      ...objWrite(FILES_OBJECT_STORE),
    ],
    subscribe: [],
  },
  dashboard: {
    publish: [`${JS}.INFO`, ...kvWrite("sage-observer"), ...kvBind("sage-plans")],
    subscribe: [],
  },
  admin: { publish: [...OPERATOR_READS], subscribe: [] },
  operator: { publish: [...OPERATOR_READS], subscribe: [] },
};

/** Every SageServe subject, for the read-only roles' `nats sub 'sage.>'`. */
const ALL_SAGE = "sage.>";

/** The subjects a catalogue message gives `role`. Durable (JetStream) messages reach listeners by a consumer, not a subscription. */
function messagePermissions(def: MessageDef, role: AuthRole): { publish: string[]; subscribe: string[] } {
  const pub = def.publishers.some((r) => CATALOG_ROLES[r].publish.includes(role));
  const sub = def.listeners.some((r) => CATALOG_ROLES[r].subscribe.includes(role));
  const pattern = def.subject.pattern();
  return { publish: pub ? [pattern] : [], subscribe: sub && !def.durable ? [pattern] : [] };
}

const uniq = (xs: string[]): string[] => [...new Set(xs)];

/** The permissions of one role: catalogue subjects + NATS plumbing. */
export function rolePermissions(role: AuthRole): RolePermissions {
  if (!(AUTH_ROLES as readonly string[]).includes(role))
    throw new SageError("CONFIG", `unknown NATS role '${role}' (roles: ${AUTH_ROLES.join(", ")})`);
  const publish: string[] = [];
  // Replies to its requests (request/reply, JetStream, KV); the admin also reads as the operator.
  const subscribe: string[] = [`${inboxPrefix(role)}.>`];
  if (role === "admin") subscribe.push(`${inboxPrefix("operator")}.>`);
  for (const m of MESSAGES) {
    const p = messagePermissions(m, role);
    publish.push(...p.publish);
    subscribe.push(...p.subscribe);
  }
  const service = SERVICE[role];
  if (service) {
    // The NATS services API: `nats micro ls|info|stats` reach every instance through these.
    for (const verb of ["PING", "INFO", "STATS"])
      subscribe.push(`$SRV.${verb}`, `$SRV.${verb}.${service}`, `$SRV.${verb}.${service}.*`);
  }
  if (role === "operator" || role === "admin") subscribe.push(ALL_SAGE);
  publish.push(...INFRA[role].publish);
  subscribe.push(...INFRA[role].subscribe);
  return {
    publish: uniq(publish),
    subscribe: uniq(subscribe),
    // Every actor answers requests (its own, and the services API's PING/INFO/STATS); the CLI roles
    // answer nothing.
    allowResponses: service !== undefined,
  };
}

/**
 * A credential narrower than its role: a region agent or VM provider of one region, or the node agent of
 * one host. Every catalogue subject with a `region` token is narrowed to `region`, one with a `node`
 * token to `node` (a region agent's: to each of `nodes`, the hosts of its region), one with an `instance`
 * token to the node's instance (`<node>-i0`, as `NodeAgentActor` names it); KV keys and the NIW
 * consumer likewise. Replies come on the scope's own inboxes (`scopedInboxPrefix`).
 */
export interface AuthScope {
  region: string;
  /** The host a node agent credential is for. */
  node?: string;
  /** The hosts of the region whose node agents a region agent may command. */
  nodes?: string[];
}

/** Roles that take a scope: a region's agents and a host's node agent. */
export const SCOPED_ROLES = ["region-agent", "vm-provider", "node-agent"] as const;
export type ScopedRole = (typeof SCOPED_ROLES)[number];

/** The name of a scoped credential: `region-agent.westus`, `node-agent.westus-h100-07`. */
export const scopedName = (role: ScopedRole, scope: AuthScope): string =>
  `${role}.${role === "node-agent" ? scope.node! : scope.region}`;

/** A scoped credential's reply inboxes (`_INBOX_node-agent_westus-h100-07`): no other host reads its replies. */
export const scopedInboxPrefix = (role: ScopedRole, scope: AuthScope): string =>
  `_INBOX_${scopedName(role, scope).replace(".", "_")}`;

/** The permissions of `role` narrowed to `scope` (see `AuthScope`). */
export function scopedPermissions(role: ScopedRole, scope: AuthScope): RolePermissions {
  if (role === "node-agent" && !scope.node)
    throw new SageError("CONFIG", "a node-agent credential needs the node it is for");
  const token = /^[A-Za-z0-9_-]+$/;
  for (const v of [scope.region, scope.node, ...(scope.nodes ?? [])])
    if (v !== undefined && !token.test(v))
      throw new SageError("CONFIG", `'${v}' cannot be a NATS subject token (letters, digits, - and _ only)`);
  const values: Record<string, string> = { region: scope.region };
  if (scope.node) {
    values.node = scope.node;
    values.instance = `${scope.node}-i0`;
  }
  const publish: string[] = [];
  const subscribe: string[] = [`${scopedInboxPrefix(role, scope)}.>`];
  const narrow = (m: MessageDef): string[] => {
    const params = m.subject.params as readonly string[];
    // A region agent commands the nodes of its region, each named.
    if (params.includes("node") && !values.node) {
      if (!scope.nodes) return [m.subject.pattern(values as never)];
      return scope.nodes.map((n) => m.subject.pattern({ ...values, node: n } as never));
    }
    return [m.subject.pattern(values as never)];
  };
  for (const m of MESSAGES) {
    const p = messagePermissions(m, role);
    if (p.publish.length) publish.push(...narrow(m));
    if (p.subscribe.length) subscribe.push(...narrow(m));
  }
  for (const verb of ["PING", "INFO", "STATS"])
    subscribe.push(`$SRV.${verb}`, `$SRV.${verb}.${role}`, `$SRV.${verb}.${role}.*`);
  const r = scope.region;
  const kvOwn = (b: string, key: string) => [`$KV.${b}.${key}`, ...kvBind(b)];
  if (role === "node-agent")
    // Batch results are keyed by batch and line, not by host: any host may run any line.
    publish.push(`${JS}.INFO`, ...kvOwn("sage-nodes", scope.node!), ...kvWrite("sage-batch-out"));
  if (role === "region-agent")
    publish.push(
      `${JS}.INFO`,
      ...kvOwn("sage-regions", r),
      ...kvOwn("sage-boots", r),
      ...kvBind("sage-plans"),
      ...niwStream,
      `${JS}.CONSUMER.INFO.${niw}.niw-${r}`,
      `${JS}.CONSUMER.CREATE.${niw}.niw-${r}`,
      `${JS}.CONSUMER.CREATE.${niw}.niw-${r}.>`,
      `${JS}.CONSUMER.DURABLE.CREATE.${niw}.niw-${r}`,
      `${JS}.CONSUMER.MSG.NEXT.${niw}.niw-${r}`,
      `$JS.ACK.${niw}.niw-${r}.>`,
    );
  return { publish: uniq(publish), subscribe: uniq(subscribe), allowResponses: true };
}

/** Does `role` hold a permission matching `subject` (NATS wildcard semantics on the pattern side)? */
export function rolePermits(role: AuthRole, action: "publish" | "subscribe", subject: string): boolean {
  return rolePermissions(role)[action].some((p) => patternCovers(p, subject));
}

/** Does permission `pattern` cover every subject `subject` (itself maybe a wildcard) can match? */
export function patternCovers(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length) return false;
    if (p[i] === "*") {
      if (s[i] === ">") return false;
      continue;
    }
    if (p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

const PERMISSIONS_BEGIN =
  "<!-- permissions:begin (generated by `npm run docs:subjects` from packages/nats/src/nats-permissions.ts) -->";
const PERMISSIONS_END = "<!-- permissions:end -->";

/** The role → permissions table of docs/security.md. */
export function renderPermissionsTable(): string {
  const code = (xs: string[]) => xs.map((x) => `\`${x}\``).join(" ");
  const rows = AUTH_ROLES.map((role) => {
    const p = rolePermissions(role);
    return `| ${role} | ${code(p.publish)} | ${code(p.subscribe)} | ${p.allowResponses ? "yes" : "no"} |`;
  });
  return [
    PERMISSIONS_BEGIN,
    "",
    "| role | may publish | may subscribe | may reply to requests it receives |",
    "| --- | --- | --- | --- |",
    ...rows,
    "",
    PERMISSIONS_END,
  ].join("\n");
}

/** `doc` with its generated permissions table replaced by the current one. */
export function updatePermissionsDoc(doc: string): string {
  const start = doc.indexOf(PERMISSIONS_BEGIN);
  const end = doc.indexOf(PERMISSIONS_END);
  if (start < 0 || end < start)
    throw new SageError("CONFIG", "docs/security.md lost its permissions:begin/end markers");
  return doc.slice(0, start) + renderPermissionsTable() + doc.slice(end + PERMISSIONS_END.length);
}
