import type { Tier } from "@sageserve/protocol";
import type { HttpError } from "./http.js";

const TIERS: Record<string, Tier> = { fast: "iw-fast", normal: "iw-normal", batch: "niw" };

const first = (h: string | string[] | undefined): string | undefined => (Array.isArray(h) ? h[0] : h);

/** The tier a request runs in: `x-sage-tier`, else the API key's default, else fast; or the 400. */
export function tierOf(
  header: string | string[] | undefined,
  keyTier: string | undefined,
): { tier: Tier; name: string } | HttpError {
  const name = first(header) ?? keyTier ?? "fast";
  // Own keys only: `x-sage-tier: constructor` found Object's constructor on the prototype.
  const tier = Object.hasOwn(TIERS, name) ? TIERS[name] : undefined;
  if (tier) return { tier, name };
  return {
    status: 400,
    message: `x-sage-tier must be fast, normal or batch, got '${name}'`,
    type: "invalid_request_error",
    code: "invalid_tier",
    param: "x-sage-tier",
  };
}

/** The caller's home region: `x-sage-region` if this gateway serves it, else `home`; or the 400. */
export function regionOf(
  header: string | string[] | undefined,
  home: string,
  others: string[],
): string | HttpError {
  const region = first(header) ?? home;
  if (region === home || others.includes(region)) return region;
  return {
    status: 400,
    message: `x-sage-region '${region}' is not served here (regions: ${[home, ...others].join(", ")})`,
    type: "invalid_request_error",
    code: "invalid_region",
    param: "x-sage-region",
  };
}
