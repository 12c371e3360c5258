/**
 * The engine process a node agent runs itself (when `engine.command` is set): starting it from its argv
 * template, tied to this process's lifetime, and stopping it (SIGTERM, then SIGKILL). Operating-system
 * mechanism, kept apart from the agent's instance lifecycle, which only decides when to start or stop.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { type Clock, killWithParent } from "@sageserve/runtime";

/** What an engine command's `{model}`, `{port}` and `{gpu}` placeholders stand for. */
export interface EngineArgs {
  model: string;
  port: string;
  gpuType: string;
}

/** Start the engine `command` (an argv template); `onError` hears a process that could not start. */
export function spawnEngine(
  command: readonly string[],
  args: EngineArgs,
  onError: (e: unknown) => void,
): ChildProcess {
  // `{parentPid}` lets an engine that supports it (the emulator's --parent-pid) exit with this process.
  const argv = command.map((a) =>
    a
      .replaceAll("{model}", args.model)
      .replaceAll("{port}", args.port)
      .replaceAll("{gpu}", args.gpuType)
      .replaceAll("{parentPid}", String(process.pid)),
  );
  // Its own process group, so a terminal's Ctrl-C reaches the agent, which lets in-flight requests
  // finish before it stops the engine (killWithParent and `{parentPid}` still tie their lifetimes).
  const child = spawn(argv[0]!, argv.slice(1), { stdio: "ignore", detached: true });
  // The engine dies with this process, even when it crashes (SIGKILL leaves `{parentPid}` watchers).
  killWithParent(child);
  child.on("error", onError);
  return child;
}

/** Stop an engine process (if it still runs); resolves once it has exited. */
export function stopEngineProcess(p: ChildProcess | undefined, clock: Clock): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    // An engine that ignores SIGTERM for 5 s is killed (a timer on the clock port, like every actor's).
    const force = clock.setTimer(5_000, () => p.kill("SIGKILL"));
    p.once("exit", () => {
      force.cancel();
      resolve();
    });
    p.kill("SIGTERM");
  });
}
