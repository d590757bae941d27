/**
 * Worker sessions against sessions in this thread, in one process (a script, not a test): loads a
 * converted folder twice (`workers: false` and `true`) and alternates their TTFT (vision +
 * prefill) and decode steps, so that both see the same moments of a shared machine. Prints the
 * median of each.
 *
 *   deno run -A tests/bench/workers_ab.ts MODEL_DIR --dtype q8 [--steps 16] [--threads 2]
 * @module
 */

import { parseArgs } from "node:util";
import { openModelDir } from "../../lib/backend/model_dir.ts";
import { OnnxBackend } from "../../lib/backend/onnx.ts";
import type { StepOutput } from "../../lib/backend/backend.ts";
import type { Precision } from "../../lib/model/precision.ts";
import { benchInput } from "./bench_input.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    dtype: { type: "string", default: "q8" },
    steps: { type: "string", default: "16" },
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "2" },
  },
});
const md = await openModelDir(positionals[0]);
const dtype = values.dtype as Precision;
const threads = Number(values.threads);
const { pixels, ids } = benchInput(md.config);
const n = ids.length;
const backends = [
  await OnnxBackend.load(md, { dtype, threads, workers: false }),
  await OnnxBackend.load(md, { dtype, threads, workers: true }),
];
const ttft = [[], []] as number[][];
const steps = [[], []] as number[][];
const argmax = (l: Float32Array) => {
  let best = 0;
  for (let j = 1; j < l.length; j++) if (l[j] > l[best]) best = j;
  return best;
};
for (let round = 0; round < Number(values.rounds); round++) {
  const outs: StepOutput[] = [];
  for (const [k, be] of backends.entries()) {
    const t = performance.now();
    const image = await be.encodeImages(pixels, 1);
    outs[k] = await be.prefillLogits({
      batchSize: 1,
      length: n,
      inputIds: ids,
      attentionMask: new Int32Array(n).fill(1),
      positionIds: Int32Array.from({ length: n }, (_, i) => i + 1),
      image,
    });
    ttft[k].push(performance.now() - t);
  }
  for (let i = 0; i < Number(values.steps); i++) {
    for (const [k, be] of backends.entries()) {
      const out = outs[k];
      const t = performance.now();
      outs[k] = await be.decodeLogits({
        cache: out.cache,
        tokens: Int32Array.of(argmax(out.logits)),
        positionIds: Int32Array.of(n + i + 1),
        attentionMask: new Int32Array(out.cache.length + 1).fill(1),
      });
      steps[k].push(performance.now() - t);
    }
  }
  const same = argmax(outs[0].logits) === argmax(outs[1].logits);
  console.log(`round ${round + 1}: same greedy token at the end: ${same}`);
}
const med = (xs: number[]) => xs.toSorted((a, b) => a - b)[xs.length >> 1];
for (const [k, name] of ["this thread", "worker sessions"].entries()) {
  console.log(
    `${name}: TTFT ${ttft[k].map((x) => x.toFixed(0)).join(" / ")} ms, decode step median ${
      med(steps[k]).toFixed(0)
    } ms (min ${Math.min(...steps[k]).toFixed(0)})`,
  );
}
console.log(`load average: ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
for (const be of backends) await be.release();
