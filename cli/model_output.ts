/**
 * The text commands' output (caption, answer): one record per image, plain text (streamed token by
 * token when stdout is a terminal) or one JSON object per line, and the `--expect`/`--reject`
 * checks on it.
 * @module
 */

import type { JobResult } from "../lib/generate/pipeline.ts";
import { TextStreamer } from "../lib/generate/stream.ts";
import { textChecks } from "./checks.ts";
import type { FlagSpec, FlagValues } from "./command.ts";
import { stringsFlag } from "./command.ts";
import { type ImageRunSpec, type Presented, type RunFlags, runImages } from "./image_run.ts";
import type { ModelArgs } from "./model_args.ts";
import type { ModelSession } from "./model_session.ts";
import { oneLine, writeOut } from "./stdout.ts";

/** node:util parseArgs options of the text checks. */
export const TEXT_CHECK_FLAG_SPEC: FlagSpec = {
  expect: { type: "string", multiple: true },
  reject: { type: "string", multiple: true },
};

/** Help lines of the text checks. */
export const TEXT_CHECK_FLAGS_HELP =
  `Checks (exit 1 when one fails; each image and check is reported):
  --expect REGEX       the text must match REGEX (case-insensitive); repeatable, all must
  --reject REGEX       the text must not match REGEX (case-insensitive); repeatable`;

const ms = (x: number) => Math.round(x * 100) / 100;

/** The NDJSON record of one result. */
export function textRecord(r: JobResult, loadMs: number, totalMs: number): Presented["record"] {
  return {
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
  };
}

/** Runs a text command (caption, answer) over the images and returns the exit code. */
export async function runText(
  command: string,
  prompt: string,
  values: FlagValues,
  model: ModelArgs,
  run: RunFlags,
): Promise<number> {
  const started = performance.now();
  const label = run.allImages.length > 1;
  const stream = !model.json && model.batchSize === 1 && Deno.stdout.isTerminal();
  const streamers = new Map<number, TextStreamer>();
  const spec: ImageRunSpec = {
    command,
    prompt,
    model,
    run,
    checks: textChecks(stringsFlag(values, "expect"), stringsFlag(values, "reject")),
    prepare: (m: ModelSession, jobs) => {
      // Streaming needs the tokenizer here; a --server run prints each line when it is done.
      const tokenizer = m.tokenizer;
      if (!stream || tokenizer === undefined) return {};
      return {
        onBatchStart: (indices) => {
          streamers.set(indices[0], new TextStreamer(tokenizer));
          if (label) writeOut(`${oneLine(jobs[indices[0]].image)}: `);
        },
        onToken: (i, tok) => writeOut(oneLine(streamers.get(i)?.push(tok) ?? "")),
      };
    },
    present: (r: JobResult, _position: number, m: ModelSession) => {
      const record = textRecord(r, m.loadMs, performance.now() - started);
      const streamer = streamers.get(r.index);
      if (streamer !== undefined) {
        writeOut(`${oneLine(streamer.flush())}\n`);
        streamers.delete(r.index);
        return Promise.resolve({ record, lines: [], streamed: true });
      }
      return Promise.resolve({ record, lines: [`${label ? `${r.job.image}: ` : ""}${r.text}`] });
    },
  };
  return await runImages(spec);
}
