import { builtinPerformanceModel } from "@sageserve/engine";
import { NatsBus } from "@sageserve/nats";
import { NodeAgentActor } from "@sageserve/node-agent";
import {
  envelope,
  type InstanceState,
  InstanceTransition,
  type NodeAction,
  NodeCommand,
  nodeCommandStep,
  type Payload,
} from "@sageserve/protocol";
import { type Bus, DemoNodeActor, freePort, MemoryBroker, VirtualClock, WallClock } from "@sageserve/runtime";
import { SimFleet } from "@sageserve/sim";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsFixture, startNats } from "./support/nats.js";
import { emulatorCommand, until } from "./support/procs.js";

/**
 * One node lifecycle, three implementations (issue 19): the live node agent (with its engine, an
 * emulator process it starts and restarts), the simulated fleet and the demo node each get the same
 * commands from the same start states, and must accept and refuse alike and go through the same states.
 * The oracle is the table below, written out by hand — not the shared rule itself; the rule
 * (`nodeCommandStep`) is checked against the same table.
 */

const A = "llama3.2-3b";
const B = "llama3.1-8b";
type Start = "serving" | "spot" | "stopped";
interface Case {
  from: Start;
  action: NodeAction;
  model?: string;
  /** Refused, or the states the instance goes through until it settles. */
  expect: "refused" | InstanceState[];
}
const row = (from: Start, settled: Record<string, "refused" | InstanceState[]>): Case[] =>
  Object.entries(settled).map(([k, expect]) => {
    const [action, model] = k.split(" ") as [NodeAction, string | undefined];
    return { from, action, ...(model ? { model: model === "A" ? A : B } : {}), expect };
  });
const TABLE: Case[] = [
  ...row("serving", {
    drain: ["draining", "stopped"],
    "make-spot": ["draining", "spot"],
    "reclaim A": "refused",
    "swap B": "refused",
    "load A": "refused",
    unload: ["stopped"],
  }),
  ...row("spot", {
    drain: "refused",
    "make-spot": "refused",
    "reclaim A": ["loading", "serving"],
    "reclaim B": "refused",
    "swap A": ["loading", "serving"],
    "swap B": ["swapping", "serving"],
    "load A": "refused",
    unload: ["stopped"],
  }),
  ...row("stopped", {
    drain: "refused",
    "make-spot": "refused",
    "reclaim A": "refused",
    "swap B": "refused",
    "load A": ["loading", "serving"],
    "load B": ["swapping", "serving"],
    unload: "refused",
  }),
];
const title = (c: Case) => `${c.from} + ${c.action}${c.model ? ` ${c.model === A ? "A" : "B"}` : ""}`;

/** A node under test: brought to a start state, sent a command, watched until it settles. */
interface Driver {
  /** A fresh node serving model A, brought to `from` by commands. */
  fresh(from: Start): Promise<Node>;
}
interface Node {
  command(action: NodeAction, model?: string): Promise<{ accepted: boolean }>;
  /** The states entered since `mark()`, once no transition is pending. */
  settled(): Promise<InstanceState[]>;
  mark(): void;
  stop(): Promise<void>;
}

/** Watch a node's transitions and command it over any bus; `wait` advances time (virtual or wall). */
function watch(bus: Bus, nodeId: string, wait: () => Promise<void>, stop: () => Promise<void>): Node {
  const states: InstanceState[] = [];
  let markAt = 0;
  bus.subscribe(InstanceTransition.subject.pattern(), (m) => {
    const d = m.data();
    if (d.ok && (d.value as Payload<typeof InstanceTransition>).nodeId === nodeId)
      states.push((d.value as Payload<typeof InstanceTransition>).to);
  });
  let seq = 0;
  return {
    async command(action, model) {
      const reply = bus.request(
        NodeCommand.subject.build({ node: nodeId }),
        envelope(NodeCommand, {
          commandId: `c${++seq}`,
          action,
          ...(model ? { model } : {}),
          issuedAtMs: 0,
        }),
        { timeoutMs: 10_000 },
      );
      await wait();
      const r = (await reply).data();
      if (!r.ok) throw r.error;
      return { accepted: (r.value as { accepted: boolean }).accepted };
    },
    async settled() {
      // Settled: in a state that is not transient (draining, loading, swapping); a node that enters none
      // within 10 waits stays where it was.
      const transient = new Set<InstanceState>(["draining", "loading", "swapping"]);
      for (let i = 0; i < 300; i++) {
        const last = states.length > markAt ? states.at(-1)! : undefined;
        if (last !== undefined && !transient.has(last)) break;
        if (last === undefined && i >= 10) break;
        await wait();
      }
      return states.slice(markAt);
    },
    mark() {
      markAt = states.length;
    },
    stop,
  };
}

/** One case on one implementation: the answer and the states gone through, as the table says. */
async function conforms(driver: Driver, c: Case): Promise<void> {
  const node = await driver.fresh(c.from);
  node.mark();
  const r = await node.command(c.action, c.model);
  expect(r.accepted).toBe(c.expect !== "refused");
  expect(await node.settled()).toEqual(c.expect === "refused" ? [] : c.expect);
  await node.stop();
}

async function bring(node: Node, from: Start): Promise<void> {
  if (from === "serving") return;
  expect((await node.command(from === "spot" ? "make-spot" : "drain")).accepted).toBe(true);
  expect((await node.settled()).at(-1)).toBe(from);
}

const simulated: Driver = {
  async fresh(from) {
    const clock = new VirtualClock({ seed: 3 });
    const broker = new MemoryBroker(clock);
    const fleet = new SimFleet(
      { bus: broker.connect("fleet"), clock },
      { perf: builtinPerformanceModel(), regions: ["westus"], horizonMs: 3_600_000 },
    );
    await fleet.start();
    const vm = fleet.deploy("westus", "h100", A);
    const node = watch(
      broker.connect("test"),
      vm.nodeId,
      () => clock.advance(1_000),
      () => fleet.stop(),
    );
    await bring(node, from);
    return node;
  },
};

const demo: Driver = {
  async fresh(from) {
    const clock = new VirtualClock({ seed: 4 });
    const broker = new MemoryBroker(clock);
    const actor = new DemoNodeActor(
      { bus: broker.connect("demo"), clock },
      { region: "westus", nodeId: "d1", model: A, log: [] },
    );
    await actor.start();
    const node = watch(
      broker.connect("test"),
      "d1",
      () => clock.advance(100),
      () => actor.stop(),
    );
    await bring(node, from);
    return node;
  },
};

describe("the node lifecycle rule", () => {
  it.each(TABLE.map((c) => [title(c), c] as const))("%s", (_t, c) => {
    const step = nodeCommandStep(
      { state: c.from, model: A, inFlight: 0 },
      { action: c.action, model: c.model },
    );
    if (c.expect === "refused") expect(step.accepted).toBe(false);
    else {
      expect(step.accepted).toBe(true);
      const states = step.accepted ? [step.to, ...(step.settlesIn ? [step.settlesIn] : [])] : [];
      // loading/swapping end in serving once the engine is up (not a step of the rule itself).
      if (step.accepted && (step.to === "loading" || step.to === "swapping")) states.push("serving");
      expect(states).toEqual(c.expect);
    }
  });
});

for (const [name, driver] of [
  ["simulated fleet", simulated],
  ["demo node", demo],
] as const) {
  describe(`node lifecycle conformance: ${name}`, () => {
    it.each(TABLE.map((c) => [title(c), c] as const))("%s", async (_t, c) => {
      await conforms(driver, c);
    });
  });
}

describe("node lifecycle conformance: live node agent (engine emulator processes on a real nats-server)", () => {
  let fx: NatsFixture;
  const clock = new WallClock({ seed: 5 });
  const buses: NatsBus[] = [];
  let n = 0;
  const live: Driver = {
    async fresh(from) {
      const nodeId = `live-${++n}`;
      const port = await freePort();
      const bus = await NatsBus.connect({ servers: fx.url, name: nodeId });
      const watcher = await NatsBus.connect({ servers: fx.url, name: `${nodeId}-test` });
      buses.push(bus, watcher);
      const agent = new NodeAgentActor(
        { bus, clock },
        {
          nodeId,
          region: "westus",
          gpuType: "h100",
          engine: {
            url: `http://127.0.0.1:${port}`,
            kind: "vllm",
            model: A,
            command: emulatorCommand(20),
            kvCapacityTokens: 200_000,
          },
          loadReportMs: 100,
          heartbeatMs: 500,
        },
      );
      await agent.start();
      expect(await until(() => agent.currentState === "serving", 30_000), `${nodeId} serving`).toBe(true);
      const node = watch(
        watcher,
        nodeId,
        () => clock.sleep(50),
        () => agent.stop(),
      );
      await watcher.flush();
      await bring(node, from);
      return node;
    },
  };
  beforeAll(async () => {
    fx = await startNats();
  });
  afterAll(async () => {
    for (const b of buses) await b.close();
    clock.cancelAll();
    await fx?.stop();
  });
  it.each(TABLE.map((c) => [title(c), c] as const))(
    "%s",
    async (_t, c) => {
      await conforms(live, c);
    },
    60_000,
  );
});
