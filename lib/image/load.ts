/**
 * Image decoding to 8-bit RGB the way HF's `load_image` + `convert("RGB")` sees an image: EXIF
 * orientation applied, embedded ICC profiles ignored, alpha dropped (not composited), grey
 * replicated to three channels. 16-bit samples are scaled by 1/257 (PIL clips or truncates them:
 * we differ on purpose). Sizes are checked from the header before any pixel is decoded; only the
 * first bytes are read for that check, the decoder reads the file itself.
 * @module
 */
import sharp from "sharp";
import { describeFsError, InputError } from "../errors.ts";
import { gifTransparentColour } from "./gif.ts";
import { headerSize } from "./header.ts";

/** sharp's header record. */
type Metadata = Awaited<ReturnType<ReturnType<typeof sharp>["metadata"]>>;

/** Default refusal threshold: images whose header claims more pixels than this are refused. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

/** Options of {@link loadImage}. */
export interface LoadImageOptions {
  /** Refuse images whose header claims more than this many pixels (default 100 megapixels). */
  readonly maxPixels?: number;
}

/** A decoded image: 8-bit RGB, row-major, channels last (HWC). */
export interface RgbImage {
  /** Width in pixels, after EXIF orientation. */
  readonly width: number;
  /** Height in pixels, after EXIF orientation. */
  readonly height: number;
  /** `width * height * 3` bytes, R G B per pixel. */
  readonly rgb: Uint8Array;
}

/** Header facts read without decoding pixels. */
interface Header {
  readonly format: string;
  readonly width: number;
  readonly height: number;
  readonly sixteenBit: boolean;
  /** Colour interpretation as sharp names it: `srgb`, `b-w`, `rgb16`, `grey16`, `cmyk`, … */
  readonly space: string;
}

/** An image whose (header-stated) size exceeds the pixel limit, refused before decoding. */
export class ImageTooLarge extends InputError {
  /** `limit`: the most pixels allowed (`LoadImageOptions.maxPixels`). */
  constructor(
    readonly path: string,
    readonly width: number,
    readonly height: number,
    readonly limit: number,
  ) {
    super(
      `${path}: image is ${width}x${height} = ${width * height} pixels, more than the limit of ` +
        `${limit}`,
    );
    this.name = "ImageTooLarge";
  }
}

/** Refuses an image whose stated size exceeds `maxPixels`. */
function checkPixels(path: string, width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels) throw new ImageTooLarge(path, width, height, maxPixels);
}

/** Loads sharp's view of the header; any failure means the bytes are not an image we can read. */
async function readHeader(path: string): Promise<Header> {
  let meta: Metadata;
  try {
    meta = await sharp(path, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new InputError(`${path}: not a readable image (${oneLine(err)})`);
  }
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (!(width > 0 && height > 0)) throw new InputError(`${path}: image header has no size`);
  return {
    format: meta.format,
    width,
    height,
    sixteenBit: meta.depth === "ushort",
    space: meta.space,
  };
}

/** First line of an error's message, for embedding in a one-line user error. */
function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split("\n")[0].trim();
}

/** Bytes read up front for the header size check (JPEG frame headers can follow large APPn). */
const HEAD_BYTES = 256 * 1024;

/**
 * Checks that `path` is a non-empty readable file and returns its first bytes (at most
 * {@link HEAD_BYTES}), turning file-system failures (missing, directory, unreadable) into
 * InputErrors. The rest of the file is left to the decoder, so a huge non-image is never read.
 */
async function readHead(path: string): Promise<Uint8Array> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
  if (info.isDirectory) throw new InputError(`${path}: is a directory, expected an image file`);
  if (info.size === 0) throw new InputError(`${path}: empty file, expected an image`);
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(path, { read: true });
    const head = new Uint8Array(Math.min(info.size, HEAD_BYTES));
    let got = 0;
    while (got < head.length) {
      const n = await file.read(head.subarray(got));
      if (n === null) break;
      got += n;
    }
    return head.subarray(0, got);
  } catch (err) {
    throw describeFsError(err, path);
  } finally {
    file?.close();
  }
}

/** The whole file (used for GIFs, once their size has passed the pixel check). */
async function readAll(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    throw describeFsError(err, path);
  }
}

/** Decoded samples as sharp returns them, before conversion to RGB. */
interface Samples {
  readonly data: Uint8Array | Uint16Array;
  readonly width: number;
  readonly height: number;
  readonly channels: number;
  /** The four channels are CMYK as PIL stores them (Adobe inversion already undone). */
  readonly cmyk: boolean;
}

/** `a * b / 255` rounded, in the integer form PIL uses for its CMYK conversion. */
function mulDiv255(a: number, b: number): number {
  const t = a * b + 128;
  return ((t >> 8) + t) >> 8;
}

/** Scales a 16-bit sample to 8 bits, rounding (65535 → 255). */
function to8(v: number): number {
  return Math.round(v / 257);
}

/**
 * Converts decoded samples to RGB uint8 as PIL's `convert("RGB")` does for 8-bit images: grey is
 * replicated, alpha dropped, CMYK mapped with `(255-K) - C*(255-K)/255`. 16-bit samples are
 * scaled by 1/257 (PIL would clip or truncate them).
 */
function toRgb8(s: Samples): Uint8Array {
  const { data, channels } = s;
  const n = s.width * s.height;
  const out = new Uint8Array(n * 3);
  const wide = data instanceof Uint16Array;
  for (let i = 0, p = 0, o = 0; i < n; i++, p += channels, o += 3) {
    if (s.cmyk) {
      const nk = 255 - data[p + 3];
      out[o] = nk - mulDiv255(data[p], nk);
      out[o + 1] = nk - mulDiv255(data[p + 1], nk);
      out[o + 2] = nk - mulDiv255(data[p + 2], nk);
    } else if (channels <= 2) {
      const v = wide ? to8(data[p]) : data[p];
      out[o] = v;
      out[o + 1] = v;
      out[o + 2] = v;
    } else if (wide) {
      out[o] = to8(data[p]);
      out[o + 1] = to8(data[p + 1]);
      out[o + 2] = to8(data[p + 2]);
    } else {
      out[o] = data[p];
      out[o + 1] = data[p + 1];
      out[o + 2] = data[p + 2];
    }
  }
  return out;
}

/** Gives fully transparent pixels of a GIF's first frame the transparent palette colour. */
function fillGifTransparent(s: Samples, rgb: Uint8Array, bytes: Uint8Array): void {
  if (s.channels !== 4 || s.cmyk) return;
  const colour = gifTransparentColour(bytes);
  if (colour === undefined) return;
  const n = s.width * s.height;
  for (let i = 0; i < n; i++) {
    if (s.data[i * 4 + 3] === 0) rgb.set(colour, i * 3);
  }
}

/** Decodes the first frame at native depth, EXIF-oriented, with no colour management. */
async function decode(path: string, header: Header): Promise<Samples> {
  const cmyk = header.space === "cmyk" && !header.sixteenBit;
  let pipeline = sharp(path, {
    autoOrient: true,
    ignoreIcc: true,
    failOn: "truncated",
    limitInputPixels: false,
    pages: 1,
    page: 0,
  });
  if (cmyk) pipeline = pipeline.pipelineColourspace("cmyk").toColourspace("cmyk");
  else if (header.sixteenBit) {
    pipeline = pipeline.toColourspace(header.space === "grey16" ? "grey16" : "rgb16");
  }
  let out: { data: Uint8Array; info: { width: number; height: number; channels: number } };
  try {
    out = await pipeline.raw({ depth: header.sixteenBit ? "ushort" : "uchar" })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new InputError(`${path}: truncated or corrupt ${header.format} image (${oneLine(err)})`);
  }
  const { width, height, channels } = out.info;
  const bytesPer = header.sixteenBit ? 2 : 1;
  if (out.data.length !== width * height * channels * bytesPer || (cmyk && channels !== 4)) {
    throw new InputError(`${path}: decoder returned an unexpected layout for ${width}x${height}`);
  }
  const bytesOut = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
  // 16-bit samples are copied into a fresh buffer so that the Uint16Array view is aligned.
  const data = header.sixteenBit
    ? new Uint16Array(bytesOut.slice().buffer, 0, bytesOut.length >> 1)
    : bytesOut;
  return { data, width, height, channels, cmyk };
}

/**
 * Decodes an image file (JPEG, PNG, WebP, GIF first frame, TIFF first page, AVIF) to 8-bit RGB.
 * Throws InputError naming the file for directories, non-images, truncated or corrupt data, and
 * ImageTooLarge for images whose header claims more than `maxPixels` pixels (checked before
 * decoding).
 */
export async function loadImage(path: string, opts: LoadImageOptions = {}): Promise<RgbImage> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const claimed = headerSize(await readHead(path));
  if (claimed !== undefined) checkPixels(path, claimed.width, claimed.height, maxPixels);
  const header = await readHeader(path);
  checkPixels(path, header.width, header.height, maxPixels);
  const samples = await decode(path, header);
  const rgb = toRgb8(samples);
  if (header.format === "gif") fillGifTransparent(samples, rgb, await readAll(path));
  return { width: samples.width, height: samples.height, rgb };
}
