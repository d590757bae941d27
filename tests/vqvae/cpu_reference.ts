/**
 * Test reference, not product code (the commands decode masks with ONNX Runtime): the VQ-VAE mask
 * decoder in plain TypeScript (float32, HWC layout): 16 codes → codebook rows laid out row-major
 * on a 4×4 grid → conv1×1 + ReLU → 2 residual blocks → 4 × (ConvTranspose 4×4 stride 2 padding 1
 * + ReLU) → conv1×1 → a 64×64 mask. Kernels are re-laid out once to [kh][kw][in][out] so the
 * inner loop runs over contiguous output channels.
 * @module
 */

import { checkCodes, type ConvWeights, type VqvaeWeights } from "../../lib/vqvae/weights.ts";

/** An HWC float tensor. */
interface Hwc {
  readonly h: number;
  readonly w: number;
  readonly c: number;
  readonly data: Float32Array;
}

/** A kernel as [kh][kw][in][out] with its sizes. */
interface Kernel {
  readonly k: number;
  readonly cin: number;
  readonly cout: number;
  readonly w: Float32Array;
  readonly bias: Float32Array;
}

/** Re-lays a PyTorch kernel ([O,I,k,k], or [I,O,k,k] when `transposed`) as [k][k][I][O]. */
function kernel(p: ConvWeights, transposed: boolean): Kernel {
  const [a, b, k] = p.shape;
  const [cin, cout] = transposed ? [a, b] : [b, a];
  const w = new Float32Array(p.weight.length);
  for (let i = 0; i < cin; i++) {
    for (let o = 0; o < cout; o++) {
      const base = transposed ? (i * cout + o) * k * k : (o * cin + i) * k * k;
      for (let t = 0; t < k * k; t++) w[(t * cin + i) * cout + o] = p.weight[base + t];
    }
  }
  return { k, cin, cout, w, bias: p.bias };
}

/** Stride-1 convolution with `pad` zeros on each side. */
function conv2d(x: Hwc, p: Kernel, pad: number): Hwc {
  const { h, w } = x;
  const { k, cin, cout } = p;
  const out = new Float32Array(h * w * cout);
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      const o = (y * w + xx) * cout;
      out.set(p.bias, o);
      for (let ky = 0; ky < k; ky++) {
        const iy = y + ky - pad;
        if (iy < 0 || iy >= h) continue;
        for (let kx = 0; kx < k; kx++) {
          const ix = xx + kx - pad;
          if (ix < 0 || ix >= w) continue;
          const src = (iy * w + ix) * cin;
          const wb = (ky * k + kx) * cin * cout;
          for (let i = 0; i < cin; i++) {
            const v = x.data[src + i];
            if (v === 0) continue;
            const row = wb + i * cout;
            for (let c = 0; c < cout; c++) out[o + c] += v * p.w[row + c];
          }
        }
      }
    }
  }
  return { h, w, c: cout, data: out };
}

/** ConvTranspose2d, kernel 4, stride 2, padding 1 (PyTorch semantics): n → 2n. */
function convTranspose(x: Hwc, p: Kernel): Hwc {
  const { h, w } = x;
  const { k, cin, cout } = p;
  const oh = h * 2;
  const ow = w * 2;
  const out = new Float32Array(oh * ow * cout);
  for (let j = 0; j < oh * ow; j++) out.set(p.bias, j * cout);
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < w; xx++) {
      const src = (y * w + xx) * cin;
      for (let ky = 0; ky < k; ky++) {
        const yy = y * 2 - 1 + ky;
        if (yy < 0 || yy >= oh) continue;
        for (let kx = 0; kx < k; kx++) {
          const xo = xx * 2 - 1 + kx;
          if (xo < 0 || xo >= ow) continue;
          const o = (yy * ow + xo) * cout;
          const wb = (ky * k + kx) * cin * cout;
          for (let i = 0; i < cin; i++) {
            const v = x.data[src + i];
            if (v === 0) continue;
            const row = wb + i * cout;
            for (let c = 0; c < cout; c++) out[o + c] += v * p.w[row + c];
          }
        }
      }
    }
  }
  return { h: oh, w: ow, c: cout, data: out };
}

function relu(x: Hwc): Hwc {
  const d = x.data;
  for (let j = 0; j < d.length; j++) if (d[j] < 0) d[j] = 0;
  return x;
}

/** A decoder with its kernels laid out for the CPU loops. */
export class CpuVqvaeDecoder {
  private readonly conv0: Kernel;
  private readonly res: { a: Kernel; b: Kernel; c: Kernel }[];
  private readonly up: Kernel[];
  private readonly out: Kernel;

  /** Prepares `weights` (re-lays every kernel once). */
  constructor(private readonly weights: VqvaeWeights) {
    this.conv0 = kernel(weights.conv0, false);
    this.res = weights.res.map((r) => ({
      a: kernel(r.conv0, false),
      b: kernel(r.conv1, false),
      c: kernel(r.conv2, false),
    }));
    this.up = weights.up.map((u) => kernel(u, true));
    this.out = kernel(weights.out, false);
  }

  /** Decodes 16 seg codes into a 64×64 float mask (row-major; roughly in [-1, 1]). */
  decode(codes: readonly number[]): Float32Array {
    const { dim, embedding } = this.weights;
    checkCodes(codes, this.weights.codes);
    const grid = new Float32Array(16 * dim);
    codes.forEach((code, pos) =>
      grid.set(embedding.subarray(code * dim, (code + 1) * dim), pos * dim)
    );
    let x = relu(conv2d({ h: 4, w: 4, c: dim, data: grid }, this.conv0, 0));
    for (const r of this.res) {
      let y = relu(conv2d(x, r.a, 1));
      y = relu(conv2d(y, r.b, 1));
      y = conv2d(y, r.c, 0);
      for (let j = 0; j < y.data.length; j++) y.data[j] += x.data[j];
      x = y;
    }
    for (const u of this.up) x = relu(convTranspose(x, u));
    return conv2d(x, this.out, 0).data;
  }
}
