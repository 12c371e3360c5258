import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { type NatsServerHandle, startNatsServer, waitForLog } from "@sageserve/nats";
import { freePort } from "@sageserve/runtime";

/**
 * A TCP proxy on loopback standing in for a network link: `cut()` drops every connection through it and
 * refuses new ones, `restore()` accepts again on the same port. `block(gateway)` drops only the
 * connections of one gateway (named in the NATS `CONNECT` line a gateway sends first), now and until
 * `unblock`: one proxy in front of each region's gateway port can then cut one link of the supercluster
 * without a way around it. Nothing leaves loopback.
 */
export interface LinkProxy {
  port: number;
  cut(): Promise<void>;
  restore(): Promise<void>;
  block(gateway: string): void;
  unblock(gateway: string): void;
  close(): Promise<void>;
}

export async function startLinkProxy(targetPort: number): Promise<LinkProxy> {
  const port = await freePort();
  const conns = new Set<{ client: Socket; upstream: Socket; gateway?: string }>();
  const blocked = new Set<string>();
  let server: Server | undefined;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer((client) => {
        const upstream = tcpConnect(targetPort, "127.0.0.1");
        const c: { client: Socket; upstream: Socket; gateway?: string } = { client, upstream };
        conns.add(c);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          conns.delete(c);
        };
        for (const s of [client, upstream]) {
          s.on("error", drop);
          s.on("close", drop);
        }
        let head = "";
        client.on("data", (chunk: Buffer) => {
          if (c.gateway === undefined && head.length < 4096) {
            head += chunk.toString("latin1");
            const m = /CONNECT \{[^\r\n]*"gateway":"([^"]+)"/.exec(head);
            if (m) c.gateway = m[1]!;
            if (c.gateway && blocked.has(c.gateway)) return drop();
          }
          upstream.write(chunk);
        });
        upstream.pipe(client);
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
  await listen();
  const stop = async () => {
    const s = server;
    server = undefined;
    for (const c of conns) {
      c.client.destroy();
      c.upstream.destroy();
    }
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  return {
    port,
    cut: stop,
    restore: listen,
    block(gateway) {
      blocked.add(gateway);
      for (const c of conns)
        if (c.gateway === gateway) {
          c.client.destroy();
          c.upstream.destroy();
        }
    },
    unblock: (gateway) => void blocked.delete(gateway),
    close: stop,
  };
}

/** `n` distinct free loopback ports. */
async function heldPorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<Server>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const out = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return out;
}

/** The shared account setup: a system account (gateways and leaf nodes need one) and the SageServe account. */
const ACCOUNTS = [
  "accounts {",
  "  SYS: { users: [{ user: sys, password: sys }] }",
  "  SAGE: { jetstream: enabled, users: [{ user: sage, password: sage }] }",
  "}",
  "system_account: SYS",
  "no_auth_user: sage",
].join("\n");

export interface Supercluster {
  /** One server per region (its own cluster, named after the region). */
  servers: Record<string, NatsServerHandle>;
  urls: Record<string, string>;
  /** The GPU host's leaf node (of `leafRegion`). */
  leaf: NatsServerHandle;
  leafUrl: string;
  /** The link between two regions' gateways, both directions (a proxy per direction). */
  gatewayLink(a: string, b: string): { cut(): Promise<void>; restore(): Promise<void> };
  /** The leaf node's uplink to its region's server. */
  leafUplink: LinkProxy;
  stop(): Promise<void>;
}

/**
 * Regions as a supercluster on loopback: a server per region, each its own cluster, joined by gateways
 * through a proxy in front of each (which can cut the link between two regions); JetStream (domain `sage`)
 * on every server, its assets placed in `homeRegion` by the clients (`jsCluster`);
 * a leaf node for a GPU host of `leafRegion`, whose uplink runs through a proxy too (the hub advertises the
 * proxy's address as its leaf URL, so the leaf cannot reconnect around it).
 */
export async function startSupercluster(
  regions: string[],
  leafRegion: string,
  homeRegion: string,
): Promise<Supercluster> {
  // nats-server 2.9.10 now and then never elects a JetStream meta leader across three single-server
  // clusters joined by gateways (seen in about 1 start in 5 alone, 2 in 5 with both cores busy, two starts
  // in a row once in CI; no error logged; starting the home server first and alone does not help — it
  // never elects itself). A start that elects one does so in a few seconds, so the fixture gives each
  // start 20 s and starts a fresh supercluster, up to five starts in all; a fifth failure fails the test.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startSuperclusterOnce(regions, leafRegion, homeRegion);
    } catch (e) {
      if (!/metadata leader/.test(String(e)) || attempt >= 5) throw e;
      console.warn(`supercluster: no JetStream meta leader in 20 s (start ${attempt}); starting a fresh one`);
    }
  }
}

async function startSuperclusterOnce(
  regions: string[],
  leafRegion: string,
  _homeRegion: string,
): Promise<Supercluster> {
  // All ports at once, each held until every one is chosen: a port picked and released one at a time
  // can be handed out again before its server binds it.
  const ports = await heldPorts(2 * regions.length + 1);
  const gw: Record<string, number> = {};
  const route: Record<string, number> = {};
  regions.forEach((r, i) => {
    gw[r] = ports[2 * i]!;
    route[r] = ports[2 * i + 1]!;
  });
  const leafPort = ports.at(-1)!;
  // One proxy in front of each region's gateway port: every configured and advertised gateway address is
  // a proxy's, so gossip cannot route around a cut link.
  const proxies = new Map<string, LinkProxy>();
  for (const r of regions) proxies.set(r, await startLinkProxy(gw[r]!));
  // The same for the leaf's uplink: the hub advertises the proxy's address as its leaf URL. (With
  // `no_advertise` instead, nats-server 2.9.10 still handed the leaf the hub's own leaf port, and the leaf
  // reconnected around a cut proxy within a second.)
  const leafUplink = await startLinkProxy(leafPort);
  const servers: Record<string, NatsServerHandle> = {};
  await Promise.all(
    regions.map(async (r) => {
      const gateways = regions
        .filter((b) => b !== r)
        .map((b) => `{ name: ${b}, url: "nats://127.0.0.1:${proxies.get(b)!.port}" }`)
        .join(", ");
      servers[r] = await startNatsServer({
        name: `${r}-1`,
        extraConfig: [
          ACCOUNTS,
          "jetstream { domain: sage }",
          `cluster { name: ${r}, listen: "127.0.0.1:${route[r]}", routes: ["nats-route://127.0.0.1:${route[r]}"] }`,
          `gateway { name: ${r}, listen: "127.0.0.1:${gw[r]}", advertise: "127.0.0.1:${proxies.get(r)!.port}", gateways: [${gateways}] }`,
          r === leafRegion
            ? `leafnodes { listen: "127.0.0.1:${leafPort}", advertise: "127.0.0.1:${leafUplink.port}", authorization { user: leaf, password: leaf, account: SAGE } }`
            : "",
        ].join("\n"),
      });
    }),
  );
  const leaf = await startNatsServer({
    name: `${leafRegion}-gpu-host`,
    jetstream: false,
    extraConfig: [
      "accounts { SAGE: { users: [{ user: sage, password: sage }] } }",
      "no_auth_user: sage",
      `leafnodes { reconnect: 1, remotes: [{ url: "nats-leaf://leaf:leaf@127.0.0.1:${leafUplink.port}", account: SAGE }] }`,
    ].join("\n"),
  });
  const stopAll = async () => {
    await leaf.stop();
    await Promise.all(Object.values(servers).map((x) => x.stop()));
    for (const p of [...proxies.values(), leafUplink]) await p.close();
  };
  try {
    await waitForLog(leaf, /Leafnode connection created/);
    // The JetStream meta group has a leader, and every gateway link is up.
    for (const r of regions)
      await waitForLog(servers[r]!, /JetStream cluster new metadata leader|Self is new JetStream/, 20_000);
    for (const r of regions)
      for (const b of regions)
        if (b !== r)
          await waitForLog(servers[r]!, new RegExp(`Outbound gateway connection to "${b}"`), 20_000);
  } catch (e) {
    await stopAll();
    throw e;
  }
  return {
    servers,
    urls: Object.fromEntries(regions.map((r) => [r, servers[r]!.url])),
    leaf,
    leafUrl: leaf.url,
    gatewayLink: (a, b) => ({
      cut: async () => {
        proxies.get(a)!.block(b);
        proxies.get(b)!.block(a);
      },
      /** Unblock, and resolve once both directions' gateway connections are registered again. */
      restore: async () => {
        const from = { [a]: servers[a]!.log().length, [b]: servers[b]!.log().length };
        proxies.get(a)!.unblock(b);
        proxies.get(b)!.unblock(a);
        const deadline = Date.now() + 30_000;
        const back = (x: string, y: string) =>
          servers[x]!.log().slice(from[x]).includes(`Outbound gateway connection to "${y}"`);
        while (!(back(a, b) && back(b, a))) {
          if (Date.now() > deadline) throw new Error(`gateway link ${a}–${b} did not come back in 30 s`);
          await new Promise((r) => setTimeout(r, 50));
        }
      },
    }),
    leafUplink,
    stop: stopAll,
  };
}
