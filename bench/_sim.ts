import { runSimulation } from "@sageserve/sim";

const [scenario = "smoke", policy = "unified-reactive", scale = "1"] = process.argv.slice(2);
const r = await runSimulation({
  scenario,
  policy,
  seed: 1,
  scale: Number(scale),
  trackIds: true,
  validate: process.env.NOVALIDATE !== "1",
});
const { timeseries, ...rest } = r.report;
console.log(JSON.stringify(rest, null, 1));
console.log(r.run, "bins", timeseries.bins.length, JSON.stringify(timeseries.bins.at(-1)));
