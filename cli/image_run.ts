/**
 * The run over many images that caption, answer, detect and segment share: the input list and its
 * shard, output checks before loading, `--output-dir` resume, one record per image (a failed image
 * becomes an error record and the others go on), the checks, `--junit`, and the exit code.
 * @module
 */

import { ExitCode, UsageError } from "../lib/errors.ts";
import { isFailure, type Job, type JobFailure, type JobResult } from "../lib/generate/pipeline.ts";
import { writeFileAtomic } from "../lib/atomic.ts";
import type { Check, RecordJson } from "./checks.ts";
import { type FlagSpec, type FlagValues, stringFlag, stringsFlag } from "./command.ts";
import { collectImages, parseShard, takeShard } from "./inputs.ts";
import type { ModelArgs } from "./model_args.ts";
import type { ModelSession, SessionRunOptions } from "./model_session.ts";
import { openSession } from "./sessions.ts";
import { checkOutputFile, prepareOutputDir, ResultStore, uniqueNames } from "./outputs.ts";
import { type JunitCase, junitXml } from "./junit.ts";
import { oneLine, writeOut } from "./stdout.ts";
import { errorLine } from "./wording.ts";

/** node:util parseArgs options of the input and run flags every image command takes. */
export const RUN_FLAG_SPEC: FlagSpec = {
  "files-from": { type: "string", multiple: true },
  recursive: { type: "boolean", short: "r" },
  shard: { type: "string" },
  "output-dir": { type: "string" },
  overwrite: { type: "boolean" },
  junit: { type: "string" },
  "fail-fast": { type: "boolean" },
};

/** Help lines of the input and run flags. */
export const RUN_FLAGS_HELP = `Inputs (any mix; a folder gives its images, sorted by name):
  IMAGE...             image files or folders; '-' reads newline-separated paths on stdin
  --files-from FILE    read newline-separated paths from FILE ('-' = stdin); repeatable
  -r, --recursive      also take images from subfolders
  --shard K/N          run only the K-th of N parts of the list (positions i with
                       i mod N = K-1), so N jobs cover it exactly once

Results:
  --output-dir DIR     also write each image's JSON record to DIR/<image-name>.json (a hash
                       of the path is added when names repeat); images whose file exists are
                       skipped (checked from the file) unless --overwrite, so a killed run
                       resumes where it stopped
  --overwrite          run images again even when their result file exists
  --junit FILE         write a JUnit XML report: one testcase per image and check
  --fail-fast          stop at the first image that fails (default: record it and go on)`;

/** Help lines on exit codes and failed images, shared by the image commands. */
export const EXIT_HELP =
  `A bad image (missing, unreadable, corrupt, too large) becomes an error record
({"image": ..., "error": {"kind": "bad_image", "message": ...}} with --json, one stderr line
otherwise) and the other images go on. Exit codes: 0 ok, 1 a check failed, 2 usage error,
3 an image or the model failed (3 wins over 1), 141 stdout was closed (e.g. '| head -1').`;

/** Input and run flags, parsed. */
export interface RunFlags {
  /** Images of this shard, with their 1-based position in the whole list. */
  readonly images: readonly { readonly path: string; readonly position: number }[];
  /** Every image of the list (all shards), for file names that are the same in every shard. */
  readonly allImages: readonly string[];
  /** `--output-dir`. */
  readonly outputDir?: string;
  /** `--overwrite`. */
  readonly overwrite: boolean;
  /** `--junit`. */
  readonly junit?: string;
  /** `--fail-fast`. */
  readonly failFast: boolean;
}

/** Reads the input and run flags; `imageArgs` are the positional arguments that name images. */
export async function parseRunFlags(
  command: string,
  values: FlagValues,
  imageArgs: readonly string[],
): Promise<RunFlags> {
  const filesFrom = stringsFlag(values, "files-from");
  if (imageArgs.length === 0 && filesFrom.length === 0) {
    throw new UsageError(`${command}: expected at least one image (see 'pg ${command} --help')`);
  }
  const shard = parseShard(stringFlag(values, "shard"));
  const all = await collectImages({
    args: imageArgs,
    filesFrom,
    recursive: values.recursive === true,
  });
  if (all.length === 0) throw new UsageError(`${command}: no images found in the inputs given`);
  const positioned = all.map((path, i) => ({ path, position: i + 1 }));
  return {
    images: takeShard(positioned, shard),
    allImages: all,
    outputDir: stringFlag(values, "output-dir"),
    overwrite: values.overwrite === true,
    junit: stringFlag(values, "junit"),
    failFast: values["fail-fast"] === true,
  };
}

/** What one command does with each image's result. */
export interface ImageRunSpec {
  /** Command name, for messages. */
  readonly command: string;
  /** Prompt given to every image. */
  readonly prompt: string;
  /** Model flags. */
  readonly model: ModelArgs;
  /** Input and run flags. */
  readonly run: RunFlags;
  /** Checks evaluated on each record. */
  readonly checks: readonly Check[];
  /** Other output paths to check before loading: `[flag, path, "file" | "dir"]`. */
  readonly outputs?: readonly (readonly [string, string, "file" | "dir"])[];
  /** Called once the model is loaded: extra run options (constraints, probabilities, …). */
  prepare?(
    model: ModelSession,
    jobs: readonly Job[],
  ): Promise<Partial<SessionRunOptions>> | Partial<SessionRunOptions>;
  /**
   * Turns one result into its record and plain lines, writing any per-image files; a throw is
   * that image's failure (`kind` from an ImageStepError, else `output_failed`).
   */
  present(result: JobResult, position: number, model: ModelSession): Promise<Presented>;
  /** Called with every image's record (stored ones included), in input order, after the run. */
  finish?(records: readonly { position: number; record: RecordJson }[]): Promise<void>;
  /** Frees what `prepare` opened. */
  close?(): Promise<void>;
}

/** One image's record, its plain-output lines and whether they were already streamed. */
export interface Presented {
  /** The NDJSON record. */
  readonly record: RecordJson;
  /** Plain-output lines (already one line each). */
  readonly lines: readonly string[];
  /** The lines went out already (streaming to a terminal). */
  readonly streamed?: boolean;
}

/** An error in one image's later steps (mask decoding, writing its files), with its kind. */
export class ImageStepError extends Error {
  /** Wraps `cause` as a failure of kind `kind`. */
  constructor(readonly kind: string, override readonly cause: unknown) {
    super(errorLine(cause).message);
    this.name = "ImageStepError";
  }
}

/** The NDJSON error record of an image. */
function errorRecord(image: string, kind: string, message: string): RecordJson {
  return { image, error: { kind, message } };
}

/** Checks the output paths, loads the model, runs every image and returns the exit code. */
export async function runImages(spec: ImageRunSpec): Promise<number> {
  const started = performance.now();
  const { command, run } = spec;
  for (const [flag, path, kind] of spec.outputs ?? []) {
    if (kind === "file") checkOutputFile(flag, path);
    else await prepareOutputDir(flag, path);
  }
  if (run.junit !== undefined) checkOutputFile("junit", run.junit);
  let store: ResultStore | undefined;
  if (run.outputDir !== undefined) {
    await prepareOutputDir("output-dir", run.outputDir);
    store = new ResultStore(run.outputDir, uniqueNames(run.allImages));
    const swept = store.sweep();
    if (swept > 0) {
      console.error(
        `${command}: removed ${swept} temporary file(s) a killed run left in ${run.outputDir}`,
      );
    }
  }

  const records: { position: number; record: RecordJson }[] = [];
  const junit: JunitCase[] = [];
  let failedImages = 0;
  let failedChecks = 0;
  const account = (position: number, record: RecordJson) => {
    records.push({ position, record });
    const image = String(record.image);
    const err = record.error as { kind: string; message: string } | undefined;
    if (err !== undefined) {
      failedImages++;
      const error = `${err.kind}: ${err.message}`;
      if (spec.checks.length === 0) junit.push({ image, check: "run", error });
      for (const c of spec.checks) junit.push({ image, check: c.name, error });
      return;
    }
    if (spec.checks.length === 0) junit.push({ image, check: "run" });
    for (const c of spec.checks) {
      const failure = c.evaluate(record) ?? undefined;
      if (failure !== undefined) {
        failedChecks++;
        console.error(`${command}: ${image}: check failed: ${failure}`);
      }
      junit.push({ image, check: c.name, failure });
    }
  };

  const todo: { path: string; position: number }[] = [];
  let resumed = 0;
  for (const img of run.images) {
    const stored = !run.overwrite ? store?.read(img.path) : undefined;
    if (stored === undefined) todo.push(img);
    else {
      resumed++;
      account(img.position, stored);
    }
  }
  if (resumed > 0) {
    console.error(
      `${command}: ${resumed} image(s) already have results in ${run.outputDir}; skipped ` +
        "(--overwrite runs them again)",
    );
  }

  let stopped = false;
  if (todo.length > 0) {
    const model = await openSession(spec.model, spec.prompt);
    try {
      console.error(`${command}: ${model.path} loaded (${model.backendName})`);
      const maxTokens = checkContext(spec, model);
      const jobs = todo.map((img) => ({ image: img.path, prompt: spec.prompt }));
      const extra = await spec.prepare?.(model, jobs);
      const batches = Math.ceil(jobs.length / spec.model.batchSize);
      let batchNo = 0;
      for await (
        const outcome of model.run(jobs, {
          batchSize: spec.model.batchSize,
          maxTokens,
          sampling: spec.model.sampling,
          seed: spec.model.seed,
          maxPixels: spec.model.maxPixels,
          ...extra,
          onBatchStart: (indices) => {
            batchNo++;
            if (batches > 1) console.error(`${command}: batch ${batchNo}/${batches}`);
            extra?.onBatchStart?.(indices);
          },
        })
      ) {
        const position = todo[outcome.index].position;
        let record = await presentOutcome(spec, outcome, position, model);
        if (record.error === undefined && store !== undefined) {
          try {
            await store.write(String(record.image), record);
          } catch (err) {
            const message = errorLine(err).message;
            console.error(`${command}: ${record.image}: output_failed: ${message}`);
            record = errorRecord(String(record.image), "output_failed", message);
          }
        }
        account(position, record);
        if (record.error !== undefined && run.failFast) {
          console.error(`${command}: stopping at the first failed image (--fail-fast)`);
          stopped = true;
          break;
        }
      }
    } finally {
      await spec.close?.();
      await model.release();
    }
  }
  records.sort((a, b) => a.position - b.position);
  await spec.finish?.(records);
  if (run.junit !== undefined) {
    const seconds = (performance.now() - started) / 1000;
    await writeFileAtomic(run.junit, junitXml(`pg ${command}`, junit, seconds));
  }
  const skipped = stopped ? run.images.length - records.length : 0;
  if (failedImages > 0 || failedChecks > 0) {
    const parts = [
      failedImages > 0 ? `${failedImages} of ${run.images.length} image(s) failed` : "",
      failedChecks > 0 ? `${failedChecks} check(s) failed` : "",
      skipped > 0 ? `${skipped} not run` : "",
    ].filter((p) => p !== "");
    console.error(`${command}: ${parts.join(", ")}`);
  }
  if (failedImages > 0) return ExitCode.badInput;
  if (failedChecks > 0) return ExitCode.checkFailed;
  return ExitCode.ok;
}

/**
 * `--max-tokens` against the model's context: a prompt that leaves no room is a usage error
 * (exit 2); a budget past the context is said once on stderr (the pipeline stops such rows at the
 * context with `stop: "context"`). Returns the budget to ask for.
 */
function checkContext(spec: ImageRunSpec, model: ModelSession): number {
  const promptTokens = model.promptLength;
  const context = model.contextLength;
  const left = context - promptTokens;
  if (left < 1) {
    throw new UsageError(
      `${spec.command}: the prompt is ${promptTokens} tokens (${model.numImageTokens} of them ` +
        `image tokens), more than the model's context of ${context} tokens allows`,
    );
  }
  if (spec.model.maxTokens > left) {
    console.error(
      `${spec.command}: --max-tokens ${spec.model.maxTokens} is past the model's context ` +
        `(${context} tokens, ${promptTokens} taken by the prompt); generation stops after ` +
        `${left} tokens with stop "context"`,
    );
  }
  return spec.model.maxTokens;
}

/** The record of one outcome, printed; failures are worded and reported on stderr. */
async function presentOutcome(
  spec: ImageRunSpec,
  outcome: JobResult | JobFailure,
  position: number,
  model: ModelSession,
): Promise<RecordJson> {
  let presented: Presented | undefined;
  let kind = "";
  let cause: unknown;
  if (isFailure(outcome)) {
    kind = outcome.kind;
    cause = outcome.error;
  } else {
    try {
      presented = await spec.present(outcome, position, model);
    } catch (err) {
      if (err instanceof ImageStepError) {
        kind = err.kind;
        cause = err.cause;
      } else if (errorLine(err).expected) {
        kind = "output_failed";
        cause = err;
      } else throw err;
    }
  }
  if (presented === undefined) {
    const image = outcome.job.image;
    const message = errorLine(cause).message;
    const short = message.startsWith(`${image}: `) ? message.slice(image.length + 2) : message;
    console.error(`${spec.command}: ${image}: ${kind}: ${short}`);
    const record = errorRecord(image, kind, message);
    if (spec.model.json) writeOut(JSON.stringify(record) + "\n");
    return record;
  }
  if (spec.model.json) writeOut(JSON.stringify(presented.record) + "\n");
  else if (!presented.streamed) { for (const l of presented.lines) writeOut(`${oneLine(l)}\n`); }
  return presented.record;
}
