/**
 * `detect` (and, through `runDetection`, `segment`): generate the answer for each image, parse it,
 * place boxes (and masks) in original-image pixels, and write the outputs.
 * @module
 */

import { basename, extname, join } from "node:path";
import { AnswerGrammar } from "../lib/detect/constrain.ts";
import { type Convention, parseConvention } from "../lib/detect/convention.ts";
import type { AnswerMode } from "../lib/detect/grammar.ts";
import { literalProbs, locateObjects } from "../lib/detect/objects.ts";
import {
  cocoEntries,
  humanLines,
  type ImageReport,
  type Json,
  labelIndex,
  reportJson,
} from "../lib/detect/report.ts";
import { CheckFailed, InputError, UsageError } from "../lib/errors.ts";
import { runJobs } from "../lib/generate/pipeline.ts";
import { ensureDir, writeFileAtomic } from "../lib/atomic.ts";
import { renderOverlay } from "../lib/mask/overlay.ts";
import { maskToPng } from "../lib/mask/png.ts";
import { detectPrefix, segmentPrefix } from "../lib/prompt/tasks.ts";
import { type MaskDecoder, openMaskDecoder } from "../lib/vqvae/session.ts";
import { type Command, type FlagSpec, type FlagValues, parseFlags, stringFlag } from "./command.ts";
import {
  checkImages,
  loadModel,
  MODEL_FLAG_SPEC,
  MODEL_FLAGS_HELP,
  numberFlag,
  parseModelArgs,
} from "./model_args.ts";
import { writeOut } from "./model_output.ts";

/** The model flags' help without its `--json` entry (detect/segment print other fields). */
const MODEL_HELP = MODEL_FLAGS_HELP.split("\n  --json")[0];

/** Help lines shared by detect and segment. */
export const OUTPUT_FLAGS_HELP =
  `  --convention NAME    big_vision (default: loc/1023, pixels truncated, mask resized
                       bilinearly, > 0) or hf-demo (loc/1024, rounded, bicubic, > 0.5)
  --constrained        restrict generation to the answer grammar (4 ordered loc tokens,
                       16 seg tokens for segment, one of the labels, then ';' or end)
  --json               one JSON object per image per line (NDJSON): image, width, height,
                       convention, objects [{label, box {x1,y1,x2,y2}, box_normalized,
                       score, mask (segment: COCO RLE {size, counts, area})}],
                       skipped [{raw, reason}], text (the raw answer)
  --coco FILE          write a COCO results file over all images (image_id = input
                       position from 1, category_id = label position from 1)
  --overlay PATH       draw boxes, labels and masks: a PNG file for one image, a folder
                       (one <image-name>.png each, not a name ending .png) for several
  --expect-label NAME  exit 1 unless every image has an object labelled NAME (one of the
                       labels looked for) ...
  --min-score S        ... with a score of at least S (default 0)`;

const OUTPUT_FLAG_SPEC: FlagSpec = {
  label: { type: "string", multiple: true },
  convention: { type: "string" },
  constrained: { type: "boolean" },
  coco: { type: "string" },
  overlay: { type: "string" },
  "expect-label": { type: "string" },
  "min-score": { type: "string" },
};

const DETECT_HELP = `Usage: pg detect <image...> <labels> --model DIR [options]

Finds objects and prints one line per object: 'label x1,y1,x2,y2 score', boxes in pixels of
the original image (x2, y2 exclusive), score = mean probability of the object's loc tokens
(softmax at temperature 1). Labels are "cat ; dog" (the last argument) or repeated --label.
With several images, each line starts with the image path.

Options:
${MODEL_HELP}
  --label NAME         a label to look for (repeatable; then every argument is an image)
${OUTPUT_FLAGS_HELP}`;

/** Options of one detect/segment run, parsed and checked. */
interface RunSpec {
  readonly mode: AnswerMode;
  readonly images: string[];
  readonly labels: string[];
  readonly convention: Convention;
  readonly constrained: boolean;
  readonly coco?: string;
  readonly overlay?: string;
  readonly masksDir?: string;
  readonly expectLabel?: string;
  readonly minScore: number;
  readonly vae?: string;
}

function splitLabels(text: string): string[] {
  return text.split(";").map((l) => l.trim()).filter((l) => l !== "");
}

function parseSpec(mode: AnswerMode, values: FlagValues, positionals: string[]): RunSpec {
  const flagLabels = ((values.label ?? []) as string[]).flatMap(splitLabels);
  let images = positionals;
  let labels = flagLabels;
  if (flagLabels.length === 0) {
    if (positionals.length < 2) {
      const what = mode === "detect" ? "<image...> <labels>" : "<image...> <label>";
      throw new UsageError(`${mode}: expected ${what} (see '${mode} --help')`);
    }
    images = positionals.slice(0, -1);
    labels = splitLabels(positionals[positionals.length - 1]);
  }
  if (images.length === 0) throw new UsageError(`${mode}: expected at least one image`);
  if (labels.length === 0) throw new UsageError(`${mode}: expected at least one label`);
  if (mode === "segment" && labels.length !== 1) {
    throw new UsageError(
      `segment: expected one label, got ${labels.length} (${labels.join(", ")})`,
    );
  }
  const masksDir = mode === "segment" ? stringFlag(values, "masks-dir") : undefined;
  const overlay = stringFlag(values, "overlay");
  if (overlay !== undefined && images.length > 1 && overlay.toLowerCase().endsWith(".png")) {
    throw new UsageError(
      `--overlay ${overlay}: a PNG file takes one image; ` +
        `with ${images.length} images give a folder`,
    );
  }
  const expectLabel = stringFlag(values, "expect-label");
  if (expectLabel !== undefined && labelIndex(labels, expectLabel) < 0) {
    throw new UsageError(
      `--expect-label ${expectLabel}: not among the labels looked for (${labels.join(", ")})`,
    );
  }
  return {
    mode,
    images,
    labels,
    convention: parseConvention(stringFlag(values, "convention")),
    constrained: values.constrained === true,
    coco: stringFlag(values, "coco"),
    overlay,
    masksDir,
    expectLabel,
    minScore: numberFlag(values, "min-score", 0, 0, 1),
    vae: mode === "segment" ? stringFlag(values, "vae") : undefined,
  };
}

/** Distinct file stems for the images (`name`, or `name_<position>` when names repeat). */
function imageStems(images: readonly string[]): string[] {
  const stems = images.map((p) => basename(p, extname(p)));
  const seen = new Map<string, number>();
  for (const s of stems) seen.set(s, (seen.get(s) ?? 0) + 1);
  return stems.map((s, i) => (seen.get(s)! > 1 ? `${s}_${i + 1}` : s));
}

function safeName(label: string): string {
  return label.replace(/[^A-Za-z0-9._-]+/g, "_").slice(0, 40) || "object";
}

/** Writes the per-image files (masks, overlay) of one report. */
async function writeImageFiles(
  spec: RunSpec,
  report: ImageReport,
  rgb: Uint8Array | undefined,
  stem: string,
): Promise<void> {
  if (spec.masksDir !== undefined) {
    for (const [i, o] of report.objects.entries()) {
      if (!o.mask) continue;
      const name = `${stem}_${i}_${safeName(o.label)}.png`;
      await writeFileAtomic(join(spec.masksDir, name), await maskToPng(o.mask));
    }
  }
  if (spec.overlay !== undefined && rgb !== undefined) {
    const path = spec.images.length > 1 ? join(spec.overlay, `${stem}.png`) : spec.overlay;
    const png = await renderOverlay(
      { width: report.width, height: report.height, rgb },
      report.objects.map((o) => ({ label: o.label, box: o.box, score: o.score, mask: o.mask })),
    );
    await writeFileAtomic(path, png);
  }
}

/** Whether `report` has an object with `label` scoring at least `minScore`. */
function hasLabel(report: ImageReport, label: string, minScore: number): boolean {
  return report.objects.some((o) =>
    labelIndex([label], o.label) === 0 && (minScore <= 0 || (o.score ?? -1) >= minScore)
  );
}

/** Runs `detect` or `segment` with the arguments after the command name. */
export async function runDetection(
  mode: AnswerMode,
  args: string[],
  help: string,
  extraFlags: FlagSpec = {},
): Promise<number> {
  const { values, positionals } = parseFlags(mode, args, {
    ...MODEL_FLAG_SPEC,
    ...OUTPUT_FLAG_SPEC,
    ...extraFlags,
  });
  if (values.help) {
    console.log(help);
    return 0;
  }
  const spec = parseSpec(mode, values, positionals);
  const opts = parseModelArgs(mode, values);
  checkImages(spec.images, opts.maxPixels);
  if (spec.masksDir !== undefined) await ensureDir(spec.masksDir);
  if (spec.overlay !== undefined && spec.images.length > 1) await ensureDir(spec.overlay);
  const model = await loadModel(opts);
  let decoder: MaskDecoder | undefined;
  try {
    const tok = model.tokenizer;
    if (tok.locBase < 0 || (mode === "segment" && tok.segBase < 0)) {
      throw new InputError(
        `${model.dir.tokenizer}: the tokenizer has no <locNNNN>/<segNNN> tokens`,
      );
    }
    if (mode === "segment") decoder = await openMaskDecoder(model.dir.path, spec.vae);
    console.error(`${mode}: ${model.dir.path} loaded (${model.backend.name})`);
    const grammar = spec.constrained
      ? new AnswerGrammar({
        mode,
        labels: spec.labels,
        tokenizer: tok,
        eosId: model.dir.eosIds[0] ?? tok.eosId,
        maxTokens: opts.maxTokens,
      })
      : undefined;
    const prompt = mode === "detect" ? detectPrefix(spec.labels) : segmentPrefix(spec.labels[0]);
    const jobs = spec.images.map((image) => ({ image, prompt }));
    const stems = imageStems(spec.images);
    const coco: Json[] = [];
    let dropped = 0;
    const missing: string[] = [];
    for await (
      const r of runJobs(model.backend, tok, jobs, {
        batchSize: opts.batchSize,
        maxTokens: opts.maxTokens,
        eosIds: model.dir.eosIds,
        sampling: opts.sampling,
        seed: opts.seed,
        maxPixels: opts.maxPixels,
        preprocess: model.dir.preprocess,
        keepRgb: spec.overlay !== undefined,
        withProbs: true,
        constrain: grammar && ((_i, ids, logits) => grammar.mask(ids, logits)),
      })
    ) {
      const located = await locateObjects(r.text, {
        mode,
        convention: spec.convention,
        width: r.width,
        height: r.height,
        tokenProbs: literalProbs(r.text, r.tokens, r.probs, tok),
        decoder,
      });
      const report: ImageReport = {
        image: r.job.image,
        width: r.width,
        height: r.height,
        convention: spec.convention,
        objects: located.objects,
        skipped: located.skipped,
        text: r.text,
      };
      for (const s of report.skipped) {
        console.error(`${mode}: ${r.job.image}: skipped '${s.raw}' (${s.reason})`);
      }
      if (opts.json) writeOut(JSON.stringify(reportJson(report)) + "\n");
      else {
        const prefix = spec.images.length > 1 ? `${r.job.image}: ` : "";
        for (const line of humanLines(report)) writeOut(`${prefix}${line}\n`);
        if (report.objects.length === 0) console.error(`${mode}: ${r.job.image}: no objects`);
      }
      await writeImageFiles(spec, report, r.rgb, stems[r.index]);
      if (spec.coco !== undefined) {
        const c = cocoEntries(report, r.index + 1, spec.labels);
        coco.push(...c.entries);
        dropped += c.dropped;
      }
      if (spec.expectLabel !== undefined && !hasLabel(report, spec.expectLabel, spec.minScore)) {
        missing.push(r.job.image);
      }
    }
    if (spec.coco !== undefined) {
      await writeFileAtomic(spec.coco, JSON.stringify(coco) + "\n");
      if (dropped > 0) {
        console.error(
          `${mode}: ${dropped} object(s) with labels not in the list left out of --coco`,
        );
      }
    }
    if (missing.length > 0) {
      const score = spec.minScore > 0 ? ` with score >= ${spec.minScore}` : "";
      throw new CheckFailed(
        `--expect-label ${spec.expectLabel}: no such object${score} in ${missing.join(", ")}`,
      );
    }
    return 0;
  } finally {
    await decoder?.close();
    await model.backend.release();
  }
}

/** `detect`: find objects and their boxes. */
export const detectCommand: Command = {
  name: "detect",
  summary: "find objects and their boxes",
  help: DETECT_HELP,
  run: (args: string[]) => runDetection("detect", args, DETECT_HELP),
};
