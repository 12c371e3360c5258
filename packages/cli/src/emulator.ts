import { SCHEDULING_POLICIES, type SchedulingPolicy, startEmulator } from "@sageserve/engine-emulator";
import { SageError } from "@sageserve/protocol";
import { explain } from "./sim.js";

export async function emulatorCommand(o: {
  model: string;
  gpu: string;
  port: number;
  host: string;
  servedModelName?: string;
  loadMs: number;
  maxModelLen: number;
  speedup: number;
  parentPid?: number;
  kvTokens?: number;
  maxNumSeqs?: number;
  schedulingPolicy?: string;
}): Promise<number> {
  try {
    const policy = o.schedulingPolicy ?? "fcfs";
    if (!SCHEDULING_POLICIES.includes(policy as SchedulingPolicy))
      throw new SageError(
        "CONFIG",
        `--scheduling-policy: ${policy} is not one of ${SCHEDULING_POLICIES.join(", ")}`,
      );
    const emu = await startEmulator({
      model: o.model,
      gpu: o.gpu,
      port: o.port,
      host: o.host,
      loadMs: o.loadMs,
      maxModelLen: o.maxModelLen,
      speedup: o.speedup,
      schedulingPolicy: policy as SchedulingPolicy,
      ...(o.kvTokens ? { kvCapacityTokens: o.kvTokens } : {}),
      ...(o.maxNumSeqs ? { maxBatch: o.maxNumSeqs } : {}),
      ...(o.servedModelName ? { servedModelName: o.servedModelName } : {}),
    });
    console.log(
      `engine emulator for ${o.model} on ${o.gpu} at ${emu.url} (OpenAI API under /v1, metrics at /metrics, scheduling policy ${policy})`,
    );
    await new Promise<void>((resolve) => {
      process.once("SIGINT", resolve);
      process.once("SIGTERM", resolve);
      // Started by a node agent that may die without stopping us (SIGKILL): never outlive it.
      const parent = o.parentPid;
      if (parent !== undefined) {
        setInterval(() => {
          try {
            process.kill(parent, 0);
          } catch {
            resolve();
          }
        }, 1_000).unref();
      }
    });
    await emu.close();
    return 0;
  } catch (e) {
    console.error(explain(e));
    return 2;
  }
}
