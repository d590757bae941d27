/**
 * `POST /v1/caption|answer|detect|segment` of `pg serve`: one image sent as its file bytes
 * (base64) with the command's options, answered with the record `pg <command> IMAGE --json`
 * prints (its `image` is the request's `name`). The options are the command line's flags, parsed
 * by the same parser, so a bad or unknown one gets the command's own message. Flags that write
 * files or check results (--output-dir, --overlay, --expect, …) belong to the client and are
 * refused here as unknown.
 * @module
 */

import { Buffer } from "node:buffer";
import { extname, join } from "node:path";
import { parseConvention } from "../lib/detect/convention.ts";
import type { AnswerMode } from "../lib/detect/grammar.ts";
import { literalProbs, locateObjects } from "../lib/detect/objects.ts";
import { type ImageReport, reportJson } from "../lib/detect/report.ts";
import { UsageError } from "../lib/errors.ts";
import type { JobResult } from "../lib/generate/pipeline.ts";
import { preprocessImage } from "../lib/image/preprocess.ts";
import { answerPrefix, captionPrefix, detectPrefix, segmentPrefix } from "../lib/prompt/tasks.ts";
import { Fields, type GenerateResult, type Json } from "../lib/serve/protocol.ts";
import type { RecordJson } from "./checks.ts";
import { type FlagSpec, type FlagValues, parseFlags, stringFlag, stringsFlag } from "./command.ts";
import { MODEL_FLAG_SPEC, numberFlag, parseModelArgs } from "./model_args.ts";
import { textRecord } from "./model_output.ts";
import { errorResponse, findModel, type Served, type ServerState, streamed } from "./serve_http.ts";
import type { ServedModel } from "../lib/serve/model_slot.ts";
import { errorLine } from "./wording.ts";

/** Model flags a request may give (the rest are the server's own choice). */
const REQUEST_MODEL_FLAGS: FlagSpec = Object.fromEntries(
  ["model", "dtype", "max-tokens", "temperature", "top-k", "top-p", "seed", "max-pixels", "json"]
    .map((k) => [k, MODEL_FLAG_SPEC[k]]),
);

const SEGMENT_FLAGS: FlagSpec = {
  label: { type: "string", multiple: true },
  convention: { type: "string" },
  constrained: { type: "boolean" },
  "min-score": { type: "string" },
};

/** The flags each command takes in a request. */
const FLAGS: Readonly<Record<string, FlagSpec>> = {
  caption: { lang: { type: "string" } },
  answer: { question: { type: "string", short: "q" }, lang: { type: "string" } },
  detect: { ...SEGMENT_FLAGS, labels: { type: "string", multiple: true } },
  segment: SEGMENT_FLAGS,
};

/** Request options as command-line arguments: `{"max-tokens": 20}` → `--max-tokens 20`. */
export function optionArgs(options: Json | undefined): string[] {
  if (options === undefined || options === null) return [];
  if (typeof options !== "object" || Array.isArray(options)) {
    throw new UsageError(`"options" must be a JSON object of flag names and values`);
  }
  const args: string[] = [];
  for (const [name, value] of Object.entries(options)) {
    const flag = `--${name}`;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v === true) args.push(flag);
      else if (v === false || v === null) continue;
      else if (typeof v === "string" || typeof v === "number") args.push(`${flag}=${v}`);
      else throw new UsageError(`"options": ${flag} takes a string, number or true`);
    }
  }
  return args;
}

/** Runs one image request and returns the record (or an error record). */
export async function runImageRequest(
  state: ServerState,
  command: string,
  body: Json,
): Promise<Response> {
  const f = new Fields(body);
  const name = f.optString("name") ?? "image";
  const spec = { ...REQUEST_MODEL_FLAGS, ...FLAGS[command] };
  let values: FlagValues;
  let prompt: string;
  let detect: { mode: AnswerMode; labels: string[] } | undefined;
  try {
    values = parseFlags(command, optionArgs(f.raw("options")), spec).values;
    const served = f.optString("model") ?? stringFlag(values, "model");
    if (served === undefined && state.models.length > 1) {
      throw new UsageError(`"model" is required: this server serves ${state.models.length}`);
    }
    values = { ...values, model: served ?? state.models[0].slot.opts.name };
    ({ prompt, detect } = commandPrompt(command, values));
  } catch (err) {
    const line = errorLine(err);
    return errorResponse({ kind: "usage", message: line.message, exit_code: line.exitCode }, 400);
  }
  const args = parseModelArgs(command, values);
  const image = Buffer.from(f.string("image"), "base64");
  const served = findModel(state, args.model, args.dtype);
  const started = performance.now();
  let model: ServedModel;
  try {
    model = await served.slot.acquire();
  } catch (err) {
    const line = errorLine(err);
    const error = { kind: "model_failed", message: line.message, exit_code: line.exitCode };
    return errorResponse(error, 500, name);
  }
  let handedOff = false;
  try {
    const dir = await Deno.makeTempDir({ prefix: "pg-serve-" });
    const file = join(dir, `image${extname(name).slice(0, 8)}`);
    let img;
    const t = performance.now();
    try {
      await Deno.writeFile(file, image);
      img = await preprocessImage(file, model.backend.config.vision.imageSize, {
        maxPixels: args.maxPixels,
        config: model.dir.preprocess,
      });
    } catch (err) {
      const message = errorLine(err).message.replaceAll(file, name);
      return errorResponse({ kind: "bad_image", message }, 422, name);
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
    const preprocess = performance.now() - t;
    const pixels = img.pixelValues;
    const { width, height } = img;
    handedOff = true;
    return streamed(async (gone) => {
      try {
        const reply = await served.batcher.submit({
          prompt,
          index: 0,
          pixels,
          maxTokens: args.maxTokens,
          sampling: args.sampling,
          seed: args.seed,
          withProbs: detect !== undefined,
          grammar: detect !== undefined && values.constrained === true ? detect : undefined,
          signal: gone,
        });
        if ("error" in reply) return { image: name, error: reply.error };
        const r = reply.result;
        if (detect === undefined) {
          const result: JobResult = {
            index: 0,
            job: { image: name, prompt },
            text: r.text,
            tokens: r.tokens,
            probs: r.probs,
            stop: r.stop,
            width,
            height,
            timings: { preprocess, ...r.timings },
          };
          return textRecord(result, model.loadMs, performance.now() - started);
        }
        return await detectionRecord(served, model, values, detect.mode, name, r, width, height);
      } finally {
        served.slot.release();
      }
    }, state.log);
  } finally {
    if (!handedOff) served.slot.release();
  }
}

/** The detect/segment record of one result, as `pg detect --json` prints it. */
async function detectionRecord(
  served: Served,
  model: ServedModel,
  values: FlagValues,
  mode: AnswerMode,
  name: string,
  r: GenerateResult,
  width: number,
  height: number,
): Promise<RecordJson> {
  const convention = parseConvention(stringFlag(values, "convention"));
  let located;
  try {
    located = await locateObjects(r.text, {
      mode,
      convention,
      width,
      height,
      tokenProbs: literalProbs(r.text, r.tokens, r.probs, model.tokenizer),
      decoder: mode === "segment" ? await served.slot.maskDecoder(model) : undefined,
    });
  } catch (err) {
    const kind = mode === "segment" ? "mask_failed" : "locate_failed";
    const line = errorLine(err);
    return { image: name, error: { kind, message: line.message } };
  }
  const minScore = numberFlag(values, "min-score", 0, 0, 1);
  const report: ImageReport = {
    image: name,
    width,
    height,
    convention,
    objects: located.objects.filter((o) => minScore <= 0 || (o.score ?? -1) >= minScore),
    skipped: located.skipped,
    text: r.text,
  };
  return reportJson(report) as RecordJson;
}

/** The prompt of a request (and the labels of detect/segment), from its flags. */
function commandPrompt(
  command: string,
  values: FlagValues,
): { prompt: string; detect?: { mode: AnswerMode; labels: string[] } } {
  const lang = stringFlag(values, "lang") ?? "en";
  if (command === "caption") return { prompt: captionPrefix(lang) };
  if (command === "answer") {
    const q = stringFlag(values, "question");
    if (q === undefined || q.trim() === "") throw new UsageError(`answer: "question" is required`);
    return { prompt: answerPrefix(q, lang) };
  }
  const labels = [...stringsFlag(values, "label"), ...stringsFlag(values, "labels")]
    .flatMap((t) => t.split(";")).map((l) => l.trim()).filter((l) => l !== "");
  const mode = command as AnswerMode;
  if (labels.length === 0) throw new UsageError(`${mode}: expected at least one label`);
  if (mode === "segment" && labels.length !== 1) {
    throw new UsageError(`segment: expected one label, got ${labels.length}`);
  }
  parseConvention(stringFlag(values, "convention"));
  numberFlag(values, "min-score", 0, 0, 1);
  const prompt = mode === "detect" ? detectPrefix(labels) : segmentPrefix(labels[0]);
  return { prompt, detect: { mode, labels } };
}
