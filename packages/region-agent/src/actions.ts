/**
 * What a region agent did, counted (`RegionAgentActor.actions`; the simulator's report sums them per
 * key, in this order). A module of its own so the agent's parts — scaling actuation, the NIW feed, plan
 * following — all count into the one object.
 */
export function newActionCounts() {
  return {
    reclaim: 0,
    swap: 0,
    boot: 0,
    makeSpot: 0,
    bootRefused: 0,
    niwReleased: 0,
    niwEscalated: 0,
    emergencyUp: 0,
    sloUp: 0,
    gpuMigrate: 0,
    surgeUp: 0,
    lullDown: 0,
    demandUp: 0,
    coldStart: 0,
    niwPaced: 0,
    aheadUp: 0,
    released: 0,
  };
}

export type ActionCounts = ReturnType<typeof newActionCounts>;
