/**
 * Where decode time goes (a script, not a test): runs one precision's decoder with ONNX Runtime
 * profiling on (a 266-token prefill of random embeddings, then 16 single-token steps) and prints
 * the time per operator type, per decode step and for the prefill.
 *
 *   deno run -A tests/bench/onnx_profile.ts [model-dir] [suffix: "" | _quantized | _q4]
 * @module
 */

import * as ort from "onnxruntime-node";
import { join } from "node:path";
import { openModelDir } from "../../lib/backend/model_dir.ts";

const path = Deno.args[0] ?? "/root/.cache/pg/onnx/pg1-3b-224";
const suffix = Deno.args[1] ?? "_q4";
const STEPS = 16;
const dir = await openModelDir(path);
const t = dir.config.text;
const prefix = join(await Deno.makeTempDir({ prefix: "pg-prof-" }), "decoder");
const s = await ort.InferenceSession.create(
  join(path, "onnx", `decoder_model_merged${suffix}.onnx`),
  {
    intraOpNumThreads: 2,
    interOpNumThreads: 1,
    executionMode: "sequential",
    enableProfiling: true,
    profileFilePrefix: prefix,
  },
);
const i64 = (v: number[], dims: number[]) =>
  new ort.Tensor("int64", BigInt64Array.from(v.map(BigInt)), dims);
const n = 266;
const emb = new Float32Array(n * t.hiddenSize).map((_, i) => Math.sin(i) * 0.02);
let feeds: Record<string, ort.Tensor> = {
  inputs_embeds: new ort.Tensor("float32", emb, [1, n, t.hiddenSize]),
  attention_mask: i64(Array(n).fill(1), [1, n]),
  position_ids: i64(Array.from({ length: n }, (_, i) => i + 1), [1, n]),
  num_logits_to_keep: i64([1], []),
};
for (let l = 0; l < t.numLayers; l++) {
  for (const kv of ["key", "value"]) {
    feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor("float32", new Float32Array(0), [
      1,
      t.numKvHeads,
      0,
      t.headDim,
    ]);
  }
}
const wall: number[] = [];
for (let step = 0; step <= STEPS; step++) {
  const t0 = performance.now();
  const r = await s.run(feeds);
  wall.push(performance.now() - t0);
  const total = n + step + 1;
  const next: Record<string, ort.Tensor> = {
    inputs_embeds: new ort.Tensor("float32", emb.slice(0, t.hiddenSize), [1, 1, t.hiddenSize]),
    attention_mask: i64(Array(total).fill(1), [1, total]),
    position_ids: i64([total], [1, 1]),
    num_logits_to_keep: i64([1], []),
  };
  for (let l = 0; l < t.numLayers; l++) {
    for (const kv of ["key", "value"]) {
      next[`past_key_values.${l}.${kv}`] = r[`present.${l}.${kv}`];
    }
  }
  feeds = next;
}
s.endProfiling();
await s.release();
const file = [...Deno.readDirSync(join(prefix, ".."))].find((e) => e.name.endsWith(".json"))!;
const events = JSON.parse(await Deno.readTextFile(join(prefix, "..", file.name))) as {
  cat: string;
  name: string;
  dur: number;
  args?: { op_name?: string };
}[];
// Node events in run order; runs are separated by "model_run" events.
const runs: Map<string, number>[] = [];
let cur = new Map<string, number>();
for (const e of events) {
  if (e.cat === "Session" && e.name === "model_run") {
    runs.push(cur);
    cur = new Map();
  } else if (e.cat === "Node" && e.name.endsWith("_kernel_time")) {
    const op = e.args?.op_name ?? "?";
    cur.set(op, (cur.get(op) ?? 0) + e.dur / 1000);
  }
}
const prefill = runs[0];
const decode = new Map<string, number>();
for (const r of runs.slice(2)) {
  for (const [k, v] of r) decode.set(k, (decode.get(k) ?? 0) + v / (runs.length - 2));
}
const table = (m: Map<string, number>, label: string, wallMs: number) => {
  const sum = [...m.values()].reduce((a, b) => a + b, 0);
  console.log(`\n${label}: wall ${wallMs.toFixed(1)} ms, kernels ${sum.toFixed(1)} ms`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    console.log(`  ${k.padEnd(28)} ${v.toFixed(2).padStart(9)} ms  ${(v / sum * 100).toFixed(1)}%`);
  }
};
console.log(`decoder_model_merged${suffix}: ${path}`);
table(prefill, `prefill ${n} tokens`, wall[0]);
const decWall = wall.slice(2).reduce((a, b) => a + b, 0) / (wall.length - 2);
table(decode, `decode step (mean of ${STEPS - 1})`, decWall);
await Deno.remove(join(prefix, ".."), { recursive: true });
