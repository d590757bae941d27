/**
 * Reads the pixel size that an image file's header claims, without decoding anything, for PNG,
 * JPEG, GIF and WebP (other formats are left to the decoder's own header reader).
 * @module
 */

/** Format and size as the header states them (before EXIF orientation). */
export interface HeaderSize {
  /** `png`, `jpeg`, `gif` or `webp`. */
  readonly format: string;
  /** Width in pixels. */
  readonly width: number;
  /** Height in pixels. */
  readonly height: number;
}

/** PNG: the IHDR chunk right after the 8-byte signature. */
function png(b: Uint8Array, v: DataView): HeaderSize | undefined {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length < 24 || sig.some((x, i) => b[i] !== x)) return undefined;
  if (String.fromCharCode(...b.subarray(12, 16)) !== "IHDR") return undefined;
  return { format: "png", width: v.getUint32(16), height: v.getUint32(20) };
}

/** GIF: the logical screen size. */
function gif(b: Uint8Array, v: DataView): HeaderSize | undefined {
  if (b.length < 10 || String.fromCharCode(...b.subarray(0, 4)) !== "GIF8") return undefined;
  return { format: "gif", width: v.getUint16(6, true), height: v.getUint16(8, true) };
}

/** JPEG: walks the marker segments up to the first start-of-frame. */
function jpeg(b: Uint8Array, v: DataView): HeaderSize | undefined {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  let p = 2;
  while (p + 4 <= b.length) {
    if (b[p] !== 0xff) return undefined;
    const m = b[p + 1];
    if (m === 0xff) {
      p++;
      continue;
    }
    if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
      p += 2;
      continue;
    }
    const len = v.getUint16(p + 2);
    const sof = m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;
    if (sof) {
      if (p + 9 > b.length) return undefined;
      return { format: "jpeg", width: v.getUint16(p + 7), height: v.getUint16(p + 5) };
    }
    p += 2 + len;
  }
  return undefined;
}

/** WebP: the VP8X canvas, or the VP8 / VP8L frame header. */
function webp(b: Uint8Array, v: DataView): HeaderSize | undefined {
  const tag = (o: number) => String.fromCharCode(...b.subarray(o, o + 4));
  if (b.length < 30 || tag(0) !== "RIFF" || tag(8) !== "WEBP") return undefined;
  const kind = tag(12);
  if (kind === "VP8X") {
    const w = 1 + (b[24] | (b[25] << 8) | (b[26] << 16));
    const h = 1 + (b[27] | (b[28] << 8) | (b[29] << 16));
    return { format: "webp", width: w, height: h };
  }
  if (kind === "VP8 ") {
    return {
      format: "webp",
      width: v.getUint16(26, true) & 0x3fff,
      height: v.getUint16(28, true) & 0x3fff,
    };
  }
  if (kind === "VP8L" && b[20] === 0x2f) {
    const bits = v.getUint32(21, true);
    return { format: "webp", width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  return undefined;
}

/** The size claimed by a PNG, JPEG, GIF or WebP header; undefined for other or unreadable data. */
export function headerSize(b: Uint8Array): HeaderSize | undefined {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return png(b, v) ?? jpeg(b, v) ?? gif(b, v) ?? webp(b, v);
}
