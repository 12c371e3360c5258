import { runSimulation } from "@sageserve/sim";
const [up, down, target] = process.argv.slice(2).map(Number);
const t = Date.now();
const r = await runSimulation({ scenario: "day", scale: 10, policy: "unified-reactive", seed: 1, validate: false,
  regionAgent: { reactive: { scaleUpAbove: up, scaleDownBelow: down, scaleUpStep: "proportional", targetUtilization: target, scaleDownGuard: true } } } as never);
const p = r.report;
console.log(up, down, target, ((Date.now() - t) / 1000).toFixed(0), "s", p.gpuHours.total.toFixed(0), "GPU-h", JSON.stringify(Object.fromEntries(Object.entries(p.slo).map(([k, x]) => [k, (100 * x.attainment).toFixed(2)]))), "ttft p95/p99", p.latencyMs["iw-fast"].ttft.p95, p.latencyMs["iw-fast"].ttft.p99);
