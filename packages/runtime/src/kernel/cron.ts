import { SageError } from "@sageserve/protocol";
import { CronExpressionParser } from "cron-parser";
import nodeCron from "node-cron";

/**
 * Cron expressions are validated by node-cron (the live scheduler) and expanded
 * by cron-parser for virtual time, so an expression either works in both or is
 * rejected up front.
 */
export function assertCron(expr: string): void {
  if (!nodeCron.validate(expr)) {
    throw new SageError("CONFIG", `invalid cron expression '${expr}'`);
  }
}

/** The first fire time strictly after `afterMs`. */
export function nextCronTime(expr: string, afterMs: number, timezone = "UTC"): number {
  const it = CronExpressionParser.parse(expr, { currentDate: new Date(afterMs), tz: timezone });
  return it.next().getTime();
}
