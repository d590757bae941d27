/**
 * A model folder's `preprocessor_config.json` (HF `SiglipImageProcessor` fields) read into what
 * the image path honours: the resize filter, the rescale factor and the per-channel mean and std.
 * Absent fields take SiglipImageProcessor's defaults, except `size`, which defaults to the
 * model's input size. Values the image path cannot honour are refused with an
 * UnsupportedPreprocessing naming the file, the field, the value and what is supported:
 * `do_resize` false, a `size` other than the model's square input, Pillow's NEAREST filter,
 * mean or std of the wrong length, a zero std. `do_convert_rgb` is accepted whatever its value:
 * images are always converted to RGB (HF fails on images that are not RGB when it is false).
 * The processor class fields are not checked.
 * @module
 */

import * as fs from "node:fs";
import { InputError } from "../errors.ts";
import { PIL_FILTER_IDS, type PilFilter } from "./pil_resample.ts";

/** How images become pixel values (the parts of the processor config the runtime honours). */
export interface PreprocessConfig {
  /** Pillow filter of the resize to the model's square input. */
  readonly resample: PilFilter;
  /**
   * Factor applied to the 0..255 samples (in float64, then rounded to float32), or null for no
   * rescaling (`do_rescale` false).
   */
  readonly rescaleFactor: number | null;
  /**
   * Per-channel (R, G, B) mean and std: `(x - mean) / std` in float32, or null for no
   * normalisation (`do_normalize` false).
   */
  readonly normalize: { readonly mean: readonly number[]; readonly std: readonly number[] } | null;
}

/** What HF's PaliGemma processor does: bicubic, × 1/255, mean = std = 0.5 per channel. */
export const DEFAULT_PREPROCESS: PreprocessConfig = {
  resample: "bicubic",
  rescaleFactor: 0.00392156862745098,
  normalize: { mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] },
};

/** A preprocessor_config.json value the image path cannot honour. */
export class UnsupportedPreprocessing extends InputError {
  /** `value`: the field's JSON value (undefined when absent); `supported`: what would do. */
  constructor(
    readonly file: string,
    readonly field: string,
    readonly value: unknown,
    readonly supported: string,
  ) {
    super(
      `${file}: ${field} ${
        value === undefined ? "absent" : JSON.stringify(value)
      } is not supported (supported: ${supported})`,
    );
    this.name = "UnsupportedPreprocessing";
  }
}

/** What the model expects of the images. */
export interface ModelInput {
  /** The vision encoder's square input side (`vision_config.image_size`). */
  readonly imageSize: number;
  /** Image tokens per image (`num_image_tokens`). */
  readonly imageTokens: number;
}

/** Pillow's filter names by id, for messages. */
const FILTER_BY_ID = new Map(
  (Object.entries(PIL_FILTER_IDS) as [PilFilter, number][]).map(([name, id]) => [id, name]),
);

/** The supported `resample` ids, e.g. `1 (LANCZOS), 2 (BILINEAR), ...`. */
const FILTER_LIST = [...FILTER_BY_ID].sort((a, b) => a[0] - b[0])
  .map(([id, name]) => `${id} (${name.toUpperCase()})`).join(", ");

/**
 * The config stated by `json` (the parsed content of `file`) for a model taking `input`; absent
 * fields take their defaults. Throws UnsupportedPreprocessing for values it cannot honour.
 */
export function parsePreprocessConfig(
  json: unknown,
  file: string,
  input: ModelInput,
): PreprocessConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new InputError(`${file}: expected a JSON object`);
  }
  const o = json as Record<string, unknown>;
  const refuse = (field: string, supported: string): never => {
    throw new UnsupportedPreprocessing(file, field, o[field], supported);
  };
  const flag = (field: string, fallback: boolean): boolean => {
    const v = o[field];
    if (v === undefined) return fallback;
    return typeof v === "boolean" ? v : refuse(field, "true or false");
  };
  const s = input.imageSize;
  if (!flag("do_resize", true)) {
    refuse("do_resize", `true (images are resized to the model's ${s}x${s} input)`);
  }
  const size = o.size;
  if (size !== undefined) {
    const keys = typeof size === "object" && size !== null ? Object.keys(size).sort() : [];
    const { height, width } = (size ?? {}) as Record<string, unknown>;
    if (keys.join() !== "height,width" || height !== s || width !== s) {
      refuse("size", `{"height": ${s}, "width": ${s}}, the vision encoder's image_size`);
    }
  }
  const resampleId = o.resample ?? PIL_FILTER_IDS.bicubic;
  const resample = typeof resampleId === "number" ? FILTER_BY_ID.get(resampleId) : undefined;
  if (resample === undefined) refuse("resample", FILTER_LIST);
  let rescaleFactor: number | null = null;
  if (flag("do_rescale", true)) {
    const f = o.rescale_factor ?? DEFAULT_PREPROCESS.rescaleFactor;
    if (typeof f !== "number" || !Number.isFinite(f)) refuse("rescale_factor", "a finite number");
    rescaleFactor = f as number;
  }
  const perChannel = (field: string, fallback: number, nonZero: boolean): number[] => {
    const v = o[field] ?? fallback;
    const list = typeof v === "number" ? [v, v, v] : v;
    const ok = Array.isArray(list) && list.length === 3 &&
      list.every((x) => typeof x === "number" && Number.isFinite(x) && (!nonZero || x !== 0));
    if (!ok) {
      refuse(field, `a ${nonZero ? "non-zero " : ""}number or a list of 3 (one per RGB channel)`);
    }
    return list as number[];
  };
  const normalize = flag("do_normalize", true)
    ? { mean: perChannel("image_mean", 0.5, false), std: perChannel("image_std", 0.5, true) }
    : null;
  if (o.image_seq_length !== undefined && o.image_seq_length !== input.imageTokens) {
    refuse("image_seq_length", `${input.imageTokens}, the model's image tokens per image`);
  }
  return { resample: resample as PilFilter, rescaleFactor, normalize };
}

/**
 * Reads the preprocessor config at `path` for a model taking `input`: DEFAULT_PREPROCESS when the
 * file is absent; InputError when it is not valid JSON; see {@link parsePreprocessConfig}.
 */
export function readPreprocessConfig(path: string, input: ModelInput): PreprocessConfig {
  let text: string;
  try {
    text = fs.readFileSync(path, "utf8");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return DEFAULT_PREPROCESS;
    throw new InputError(`${path}: cannot read it (${(err as Error).message.split("\n")[0]})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new InputError(`${path}: not valid JSON (${(err as Error).message})`);
  }
  return parsePreprocessConfig(json, path, input);
}
