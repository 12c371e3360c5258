/**
 * Child processes that die with their parent: servers and engines a local command spawns must not
 * outlive it, even when it crashes.
 */
import type { ChildProcess } from "node:child_process";

const children = new Set<ChildProcess>();
let listening = false;

/**
 * Never let `child` outlive this process, even when it crashes: one shared `exit` listener SIGKILLs
 * every registered child still running (a listener per child trips Node's max-listeners warning
 * in a cluster with a dozen engines).
 */
export function killWithParent(child: ChildProcess): void {
  if (!listening) {
    listening = true;
    process.once("exit", () => {
      for (const c of children) c.kill("SIGKILL");
    });
  }
  children.add(child);
  child.once("exit", () => children.delete(child));
}
