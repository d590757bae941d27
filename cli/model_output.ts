/**
 * Running image jobs for a model command and printing their results: plain text (streamed token by
 * token when stdout is a terminal) or one JSON object per image per line.
 * @module
 */

import { type Job, type JobResult, runJobs } from "../lib/generate/pipeline.ts";
import { TextStreamer } from "../lib/generate/stream.ts";
import { checkImages, type LoadedModel, loadModel, type ModelArgs } from "./model_args.ts";

const encoder = new TextEncoder();

/** Writes all of `text` to stdout. */
export function writeOut(text: string): void {
  const bytes = encoder.encode(text);
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}

const ms = (x: number) => Math.round(x * 100) / 100;

/** The NDJSON line of one result. */
export function jsonLine(r: JobResult, loadMs: number, totalMs: number): string {
  return JSON.stringify({
    image: r.job.image,
    prompt: r.job.prompt,
    text: r.text,
    tokens: r.tokens,
    stop: r.stop,
    timings_ms: {
      load: ms(loadMs),
      preprocess: ms(r.timings.preprocess),
      vision: ms(r.timings.vision),
      prefill: ms(r.timings.prefill),
      decode: ms(r.timings.decode),
      total: ms(totalMs),
    },
  });
}

/**
 * A text command (caption, answer): checks the jobs' images, loads the model, then runs and prints
 * the jobs as `runAndPrint` does. Returns the exit code.
 */
export async function loadAndRunText(
  command: string,
  jobs: readonly Job[],
  args: ModelArgs,
  startedAt: number,
): Promise<number> {
  checkImages(jobs.map((j) => j.image), args.maxPixels);
  const model = await loadModel(args);
  console.error(`${command}: ${model.dir.path} loaded (${model.backend.name})`);
  return await runAndPrint(command, jobs, args, model, startedAt);
}

/**
 * Runs `jobs` on `model` and prints the results; `startedAt` (performance.now()) is when the
 * command started, for `timings_ms.total`. Returns the exit code.
 */
export async function runAndPrint(
  command: string,
  jobs: readonly Job[],
  args: ModelArgs,
  model: LoadedModel,
  startedAt: number,
): Promise<number> {
  const label = jobs.length > 1;
  const stream = !args.json && args.batchSize === 1 && Deno.stdout.isTerminal();
  const streamers = new Map<number, TextStreamer>();
  const batches = Math.ceil(jobs.length / args.batchSize);
  let batchNo = 0;
  try {
    for await (
      const r of runJobs(model.backend, model.tokenizer, jobs, {
        batchSize: args.batchSize,
        maxTokens: args.maxTokens,
        eosIds: model.dir.eosIds,
        sampling: args.sampling,
        seed: args.seed,
        maxPixels: args.maxPixels,
        preprocess: model.dir.preprocess,
        onBatchStart: (indices) => {
          batchNo++;
          if (batches > 1) console.error(`${command}: batch ${batchNo}/${batches}`);
          if (!stream) return;
          streamers.set(indices[0], new TextStreamer(model.tokenizer));
          if (label) writeOut(`${jobs[indices[0]].image}: `);
        },
        onToken: stream ? (i, tok) => writeOut(streamers.get(i)!.push(tok)) : undefined,
      })
    ) {
      if (args.json) {
        writeOut(jsonLine(r, model.loadMs, performance.now() - startedAt) + "\n");
      } else if (stream) {
        writeOut(streamers.get(r.index)!.flush() + "\n");
        streamers.delete(r.index);
      } else {
        writeOut(`${label ? `${r.job.image}: ` : ""}${r.text}\n`);
      }
    }
  } finally {
    await model.backend.release();
  }
  return 0;
}
