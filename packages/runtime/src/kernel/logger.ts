import pino from "pino";
import type { Clock } from "./ports.js";

/** The logging surface actors use; pino in live processes, silent or captured in simulation. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

export function createLogger(
  opts: { name: string; clock?: Clock; level?: string } = { name: "sageserve" },
): Logger {
  const clock = opts.clock;
  return pino({
    name: opts.name,
    level: opts.level ?? process.env.SAGE_LOG_LEVEL ?? "info",
    // In simulation the log carries virtual time, so a replay's log reads like the live one.
    timestamp: clock ? () => `,"time":${clock.now()}` : pino.stdTimeFunctions.epochTime,
    base: { pid: undefined },
  }) as unknown as Logger;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/** Collects log records in memory (tests, simulation reports). */
export function memoryLogger(sink: { level: string; msg: string | undefined; obj: object }[] = []): Logger {
  const make = (bindings: Record<string, unknown>): Logger => {
    const rec = (level: string) => (obj: object, msg?: string) => {
      sink.push({ level, msg, obj: { ...bindings, ...obj } });
    };
    return {
      debug: rec("debug"),
      info: rec("info"),
      warn: rec("warn"),
      error: rec("error"),
      child: (b) => make({ ...bindings, ...b }),
    };
  };
  return make({});
}
