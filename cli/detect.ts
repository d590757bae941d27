/**
 * `detect` (and, through `runDetection`, `segment`): generate the answer for each image, parse it,
 * place boxes (and masks) in original-image pixels, and write the outputs.
 * @module
 */

import { basename, extname, join } from "node:path";
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
import { InputError, UsageError } from "../lib/errors.ts";
import type { JobResult } from "../lib/generate/pipeline.ts";
import { writeFileAtomic } from "../lib/atomic.ts";
import { renderOverlay } from "../lib/mask/overlay.ts";
import { maskToPng } from "../lib/mask/png.ts";
import { detectPrefix, segmentPrefix } from "../lib/prompt/tasks.ts";
import type { MaskDecoder } from "../lib/vqvae/session.ts";
import { type Check, labelChecks, type RecordJson } from "./checks.ts";
import {
  type Command,
  type FlagSpec,
  type FlagValues,
  parseFlags,
  stringFlag,
  stringsFlag,
} from "./command.ts";
import {
  EXIT_HELP,
  ImageStepError,
  parseRunFlags,
  RUN_FLAG_SPEC,
  RUN_FLAGS_HELP,
  type RunFlags,
  runImages,
} from "./image_run.ts";
import { looksLikeImage } from "./inputs.ts";
import { MODEL_FLAG_SPEC, MODEL_FLAGS_HELP, numberFlag, parseModelArgs } from "./model_args.ts";
import { overlayIsFolder } from "./outputs.ts";
import { writeOut } from "./stdout.ts";

/** The model flags' help without its `--json` entry (detect/segment print other fields). */
export const MODEL_HELP = MODEL_FLAGS_HELP.split("\n  --json")[0];

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
  --coco FILE          write a COCO results file over all images (image_id = position in
                       the whole input list from 1, category_id = label position from 1)
  --overlay PATH       draw boxes, labels and masks: a PNG file for one image; a folder
                       (one <image-name>.png each) when PATH ends in '/', is a folder, or
                       there are several images

Checks (exit 1 when one fails; each image and check is reported):
  --expect-label NAME  every image must have an object labelled NAME (one of the labels
                       looked for); repeatable, all must be found
  --reject-label NAME  no image may have an object labelled NAME; repeatable
  --min-score S        objects count for the checks only with score >= S; given without
                       --expect-label/--reject-label, objects below S are left out of every
                       output instead`;

const OUTPUT_FLAG_SPEC: FlagSpec = {
  label: { type: "string", multiple: true },
  labels: { type: "string", multiple: true },
  convention: { type: "string" },
  constrained: { type: "boolean" },
  coco: { type: "string" },
  overlay: { type: "string" },
  "expect-label": { type: "string", multiple: true },
  "reject-label": { type: "string", multiple: true },
  "min-score": { type: "string" },
};

const DETECT_HELP = `Usage: pg detect <image...> --label A [--label B] --model MODEL [options]
       pg detect <image> "<label> ; <label>" --model MODEL [options]

Finds objects and prints one line per object: 'label x1,y1,x2,y2 score', boxes in pixels of
the original image (x2, y2 exclusive), score = mean probability of the object's loc tokens
(softmax at temperature 1). With several images, each line starts with the image path. The
short form takes exactly one image and one "a ; b" label list; with --label or --labels every
argument is an image.

  --label NAME         a label to look for (repeatable)
  --labels "A ; B"     labels separated by ';' (repeatable)

${RUN_FLAGS_HELP}

Model and output:
${MODEL_HELP}
${OUTPUT_FLAGS_HELP}

${EXIT_HELP}

Examples:
  pg detect photo.jpg "cat ; dog" --model ~/models/pg2-448
  pg detect shots/ -r --label dog --expect-label dog --min-score 0.5 --junit report.xml
  pg detect - --labels "car ; person" --json --coco coco.json --overlay overlays/ < paths.txt`;

/** Options of one detect/segment run, parsed and checked. */
interface RunSpec {
  readonly mode: AnswerMode;
  readonly labels: string[];
  readonly convention: Convention;
  readonly constrained: boolean;
  readonly coco?: string;
  readonly overlay?: string;
  readonly overlayFolder: boolean;
  readonly masksDir?: string;
  readonly checks: Check[];
  /** Objects below this score are left out of every output (`--min-score` without checks). */
  readonly reportMinScore: number;
  readonly vae?: string;
}

function splitLabels(text: string): string[] {
  return text.split(";").map((l) => l.trim()).filter((l) => l !== "");
}

/** Splits positionals into images and labels, refusing anything ambiguous. */
function imagesAndLabels(
  mode: AnswerMode,
  values: FlagValues,
  positionals: readonly string[],
): { images: string[]; labels: string[] } {
  const flagLabels = [...stringsFlag(values, "label"), ...stringsFlag(values, "labels")]
    .flatMap(splitLabels);
  if (flagLabels.length > 0) return { images: [...positionals], labels: flagLabels };
  const what = mode === "detect" ? '<image> "<label> ; <label>"' : "<image> <label>";
  if (positionals.length !== 2) {
    throw new UsageError(
      `${mode}: expected ${what}, or images and --label; got ${positionals.length} ` +
        `argument(s) and no --label (see 'pg ${mode} --help')`,
    );
  }
  const [image, text] = positionals;
  if (looksLikeImage(text)) {
    throw new UsageError(
      `${mode}: '${text}' looks like an image, not a label; give the labels with --label`,
    );
  }
  return { images: [image], labels: splitLabels(text) };
}

function parseSpec(mode: AnswerMode, values: FlagValues, labels: string[], run: RunFlags): RunSpec {
  if (labels.length === 0) throw new UsageError(`${mode}: expected at least one label`);
  if (mode === "segment" && labels.length !== 1) {
    throw new UsageError(
      `segment: expected one label, got ${labels.length} (${labels.join(", ")})`,
    );
  }
  const overlay = stringFlag(values, "overlay");
  const overlayFolder = overlay !== undefined && overlayIsFolder(overlay, run.allImages.length);
  if (overlay !== undefined && overlayFolder && overlay.toLowerCase().endsWith(".png")) {
    throw new UsageError(
      `--overlay ${overlay}: a PNG file takes one image; with ${run.allImages.length} ` +
        "images give a folder",
    );
  }
  const expect = stringsFlag(values, "expect-label");
  const reject = stringsFlag(values, "reject-label");
  for (const [flag, list] of [["expect-label", expect], ["reject-label", reject]] as const) {
    for (const l of list) {
      if (labelIndex(labels, l) < 0) {
        throw new UsageError(
          `--${flag} ${l}: not among the labels looked for (${labels.join(", ")})`,
        );
      }
    }
  }
  const minScore = numberFlag(values, "min-score", 0, 0, 1);
  const checks = labelChecks(expect, reject, minScore);
  return {
    mode,
    labels,
    convention: parseConvention(stringFlag(values, "convention")),
    constrained: values.constrained === true,
    coco: stringFlag(values, "coco"),
    overlay,
    overlayFolder,
    masksDir: mode === "segment" ? stringFlag(values, "masks-dir") : undefined,
    checks,
    reportMinScore: checks.length === 0 ? minScore : 0,
    vae: mode === "segment" ? stringFlag(values, "vae") : undefined,
  };
}

/** A file stem for an image: its base name without extension, plus its position when repeated. */
function imageStem(image: string, position: number, repeated: boolean): string {
  const stem = basename(image, extname(image));
  return repeated ? `${stem}_${position}` : stem;
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
    const path = spec.overlayFolder ? join(spec.overlay, `${stem}.png`) : spec.overlay;
    const png = await renderOverlay(
      { width: report.width, height: report.height, rgb },
      report.objects.map((o) => ({ label: o.label, box: o.box, score: o.score, mask: o.mask })),
    );
    await writeFileAtomic(path, png);
  }
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
    ...RUN_FLAG_SPEC,
    ...OUTPUT_FLAG_SPEC,
    ...extraFlags,
  });
  if (values.help) {
    writeOut(`${help}\n`);
    return 0;
  }
  const { images, labels } = imagesAndLabels(mode, values, positionals);
  const opts = parseModelArgs(mode, values);
  const run = await parseRunFlags(mode, values, images);
  const spec = parseSpec(mode, values, labels, run);
  const names = new Map<string, number>();
  for (const p of run.allImages) {
    const s = basename(p, extname(p));
    names.set(s, (names.get(s) ?? 0) + 1);
  }
  let decoder: MaskDecoder | undefined;
  const coco = spec.coco;
  return await runImages({
    command: mode,
    prompt: mode === "detect" ? detectPrefix(spec.labels) : segmentPrefix(spec.labels[0]),
    model: opts,
    run,
    checks: spec.checks,
    outputs: [
      ...(coco === undefined ? [] : [["coco", coco, "file"] as const]),
      ...(spec.masksDir === undefined ? [] : [["masks-dir", spec.masksDir, "dir"] as const]),
      ...(spec.overlay === undefined
        ? []
        : [["overlay", spec.overlay, spec.overlayFolder ? "dir" : "file"] as const]),
    ],
    async prepare(model) {
      const ids = model.ids;
      if (ids.locBase < 0 || (mode === "segment" && ids.segBase < 0)) {
        throw new InputError(
          `${model.tokenizerPath}: the tokenizer has no <locNNNN>/<segNNN> tokens`,
        );
      }
      if (mode === "segment") decoder = await model.maskDecoder(spec.vae);
      return {
        keepRgb: spec.overlay !== undefined,
        withProbs: true,
        grammar: spec.constrained ? { mode, labels: spec.labels } : undefined,
      };
    },
    async present(r: JobResult, position, model) {
      let located;
      try {
        located = await locateObjects(r.text, {
          mode,
          convention: spec.convention,
          width: r.width,
          height: r.height,
          tokenProbs: literalProbs(r.text, r.tokens, r.probs, model.ids),
          decoder,
        });
      } catch (err) {
        throw new ImageStepError(mode === "segment" ? "mask_failed" : "locate_failed", err);
      }
      const report: ImageReport = {
        image: r.job.image,
        width: r.width,
        height: r.height,
        convention: spec.convention,
        objects: located.objects.filter((o) =>
          spec.reportMinScore <= 0 || (o.score ?? -1) >= spec.reportMinScore
        ),
        skipped: located.skipped,
        text: r.text,
      };
      for (const s of report.skipped) {
        console.error(`${mode}: ${r.job.image}: skipped '${s.raw}' (${s.reason})`);
      }
      if (!opts.json && report.objects.length === 0) {
        console.error(`${mode}: ${r.job.image}: no objects`);
      }
      const stem = imageStem(
        r.job.image,
        position,
        names.get(basename(r.job.image, extname(r.job.image)))! > 1,
      );
      try {
        await writeImageFiles(spec, report, r.rgb, stem);
      } catch (err) {
        throw new ImageStepError("output_failed", err);
      }
      const prefix = run.allImages.length > 1 ? `${r.job.image}: ` : "";
      return {
        record: reportJson(report) as RecordJson,
        lines: humanLines(report).map((l) => `${prefix}${l}`),
      };
    },
    async finish(records) {
      if (coco === undefined) return;
      const entries: Json[] = [];
      let dropped = 0;
      for (const { position, record } of records) {
        if (record.error !== undefined) continue;
        const c = cocoEntries(record, position, spec.labels);
        entries.push(...c.entries);
        dropped += c.dropped;
      }
      await writeFileAtomic(coco, JSON.stringify(entries) + "\n");
      if (dropped > 0) {
        console.error(
          `${mode}: ${dropped} object(s) with labels not in the list left out of --coco`,
        );
      }
    },
    async close() {
      await decoder?.close();
    },
  });
}

/** `detect`: find objects and their boxes. */
export const detectCommand: Command = {
  name: "detect",
  summary: "find objects and their boxes",
  help: DETECT_HELP,
  run: (args: string[]) => runDetection("detect", args, DETECT_HELP),
};
