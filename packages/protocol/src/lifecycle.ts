import type { InstanceState } from "./domain.js";
import type { NODE_ACTIONS } from "./messages-control.js";

export type NodeAction = (typeof NODE_ACTIONS)[number];

/** What the lifecycle rule needs to know of an instance. */
export interface LifecycleView {
  state: InstanceState;
  /** The model it serves (or last served). */
  model: string;
  /** Requests running on it now. */
  inFlight: number;
}

/**
 * A command's effect: refused (with the reason), or accepted with the state the instance enters now
 * and — for a drain — the state it ends in once its running requests have finished.
 *
 * `loading` and `swapping` end in `serving` once the engine is up (a warm reload of the same model is
 * `loading`, another model is `swapping`); `draining` ends in `settlesIn` when the last running request ends
 * (at once when none is running).
 */
export type LifecycleStep =
  | { accepted: true; to: InstanceState; settlesIn?: InstanceState }
  | { accepted: false; reason: string };

/**
 * The one node lifecycle (states × commands → state | refusal), used by the live node agent, the
 * simulated fleet and the demo node, so the simulator accepts exactly the schedules the live system
 * accepts. What a node can do at all (a profile for the model, an engine command to restart) is checked
 * by each before this rule.
 *
 * | command | from | to |
 * | --- | --- | --- |
 * | drain | serving | draining → stopped |
 * | make-spot | serving | draining → spot |
 * | reclaim (same model) | spot | loading → serving |
 * | swap (model) | spot | loading (same model) or swapping → serving |
 * | load (model) | stopped, failed | loading (same model) or swapping → serving |
 * | unload | serving (busy: draining → stopped), spot, failed | stopped |
 */
export function nodeCommandStep(
  view: LifecycleView,
  cmd: { action: NodeAction; model?: string | undefined },
): LifecycleStep {
  const { state } = view;
  const refuse = (reason: string): LifecycleStep => ({ accepted: false, reason });
  const model = cmd.model ?? view.model;
  const starting = (): InstanceState => (model === view.model ? "loading" : "swapping");
  switch (cmd.action) {
    case "drain":
    case "make-spot":
      if (state !== "serving") return refuse(`instance is ${state}, not serving`);
      return { accepted: true, to: "draining", settlesIn: cmd.action === "drain" ? "stopped" : "spot" };
    case "reclaim":
      if (state !== "spot" || model !== view.model)
        return refuse(`reclaim needs a spot instance of ${model}; it is ${state} with ${view.model}`);
      return { accepted: true, to: "loading" };
    case "swap":
      if (state !== "spot") return refuse(`swap needs a spot instance; it is ${state}`);
      return { accepted: true, to: starting() };
    case "load":
      if (state !== "stopped" && state !== "failed")
        return refuse(`load needs a stopped or failed instance; it is ${state}`);
      return { accepted: true, to: starting() };
    case "unload":
      if (state === "serving")
        return view.inFlight > 0
          ? { accepted: true, to: "draining", settlesIn: "stopped" }
          : { accepted: true, to: "stopped" };
      if (state !== "spot" && state !== "failed")
        return refuse(`unload needs a serving, spot or failed instance; it is ${state}`);
      return { accepted: true, to: "stopped" };
  }
}
