/**
 * Batch API throughput: requests per second through files → batches → output file, with the official
 * `openai` SDK against gateway → router → region agent (durable NIW queue) → node agent → engine
 * emulator on a real nats-server. Baseline in the same run: the same requests sent one by one as
 * interactive chat completions (64 at a time) through the same gateway.
 */
import OpenAI, { toFile } from "openai";
import { fmt, machine, writeSection } from "./report.js";
import { startRequestPath } from "./request-path.js";

const quick = process.argv.includes("--quick");
const N = quick ? 300 : 2_000;
const MAX_TOKENS = 16;
const MODEL = "llama3.2-3b";

// Fast engine: the bench measures the control path (queue, release, result store, files), not the GPU.
const path = await startRequestPath({ speedup: 50, models: [MODEL], nodeId: "b1", regionAgent: true });
const { clock, gateway } = path;
const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "none", maxRetries: 0 });

const body = (i: number) => ({
  model: MODEL,
  messages: [{ role: "user" as const, content: `question ${i}` }],
  max_tokens: MAX_TOKENS,
});

// Baseline: the same requests as interactive completions, 64 in flight.
const t0 = performance.now();
let next = 0;
await Promise.all(
  Array.from({ length: 64 }, async () => {
    while (next < N) {
      const i = next++;
      await client.chat.completions.create(body(i));
    }
  }),
);
const directS = (performance.now() - t0) / 1000;

// The Batch API: upload, create, poll until completed, download the output.
const text = `${Array.from({ length: N }, (_, i) => JSON.stringify({ custom_id: `r${i}`, method: "POST", url: "/v1/chat/completions", body: body(i) })).join("\n")}\n`;
const t1 = performance.now();
const file = await client.files.create({
  file: await toFile(Buffer.from(text), "bench.jsonl"),
  purpose: "batch",
});
const uploadS = (performance.now() - t1) / 1000;
const batch = await client.batches.create({
  input_file_id: file.id,
  endpoint: "/v1/chat/completions",
  completion_window: "24h",
});
let b = batch;
while (!["completed", "failed", "cancelled", "expired"].includes(b.status)) {
  await clock.sleep(100);
  b = await client.batches.retrieve(batch.id);
}
const doneS = (performance.now() - t1) / 1000;
const out = await (await client.files.content(b.output_file_id!)).text();
const totalS = (performance.now() - t1) / 1000;
const lines = out.split("\n").filter((l) => l).length;
if (b.status !== "completed" || lines !== N) throw new Error(`batch ${b.status} with ${lines} of ${N} lines`);

await path.stop();

const md = `## Batch API throughput (\`bench/batch.ts\`)

Machine: ${machine()}${quick ? " — **quick profile**" : ""}. ${N} chat requests of ${MAX_TOKENS} output tokens, official \`openai\` SDK →
gateway → router → region agent (durable NIW queue in JetStream) → node agent → engine emulator (50× the measured H100 speed,
so the control path is what is measured) on a real nats-server. Batch: upload the JSONL file, create the batch, poll every
100 ms until it is completed, download the output file. Baseline, same run: the same requests as interactive completions,
64 in flight.

| path | seconds | requests/s |
| --- | ---: | ---: |
| interactive completions, 64 in flight (baseline) | ${fmt(directS, 2)} | ${fmt(N / directS)} |
| Batch API: upload | ${fmt(uploadS, 2)} | — |
| Batch API: upload → batch completed | ${fmt(doneS, 2)} | ${fmt(N / doneS)} |
| Batch API: upload → output file read | ${fmt(totalS, 2)} | ${fmt(N / totalS)} (${fmt(directS / totalS, 2)}× the baseline) |

The batch path stores every result in KV before its queued job is acknowledged and releases jobs into spare capacity
(the region agent's NIW release rule), so it trades speed for durability and for leaving room to interactive traffic.
`;
writeSection("batch", md);
console.log(md);
