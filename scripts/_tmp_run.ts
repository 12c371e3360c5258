import { runSimulation } from "@sageserve/sim";
const [scenario, policy, scale, extra] = process.argv.slice(2);
const t0 = Date.now();
const r = await runSimulation({ scenario: scenario!, policy: policy!, seed: 1, scale: Number(scale ?? 1), validate: false, ...(extra ? JSON.parse(extra) : {}) });
const rep: any = r.report;
console.log(JSON.stringify({ policy, extra, gpuh: rep.gpuHours ?? rep.cost, slo: Object.fromEntries(Object.entries(rep.slo).map(([k, v]: any) => [k, v.attainmentFeasible ?? v.attainment])), planner: rep.planner && { plans: rep.planner.plans, replans: rep.planner.replans?.length, fe: rep.planner.forecastError }, warnings: rep.warnings, wall: Date.now() - t0 }, null, 0));
