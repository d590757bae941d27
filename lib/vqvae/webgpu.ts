/**
 * The VQ-VAE mask decoder on a WebGPU device (the model's own device when the backend is webgpu):
 * codebook lookup on the host, then conv2d / ReLU / residual adds / four ConvTranspose2d and the
 * 1×1 output conv on the device (kernels/conv2d.wgsl, conv_transpose.wgsl, add.wgsl), NHWC.
 * Same architecture as the ONNX graph (lib/vqvae/onnx_graph.ts).
 * @module
 */

import { add, conv2d, conv2dOutSize, convTranspose, convTransposeOutSize } from "../webgpu/ops.ts";
import type { GpuRunner, GpuTensor } from "../webgpu/runner.ts";
import type { MaskDecoder } from "./session.ts";
import { checkCodes, CODES_PER_MASK, type ConvWeights, type VqvaeWeights } from "./weights.ts";

/** One convolution's weights on the device. */
interface GpuConv {
  readonly w: GpuTensor;
  readonly bias: GpuTensor;
  readonly cin: number;
  readonly cout: number;
  readonly k: number;
}

/** An NHWC activation on the device. */
interface Act {
  readonly t: GpuTensor;
  readonly h: number;
  readonly w: number;
  readonly c: number;
}

/** `MaskDecoder` on a GpuRunner. */
export class WebGpuMaskDecoder implements MaskDecoder {
  readonly #conv0: GpuConv;
  readonly #res: { a: GpuConv; b: GpuConv; c: GpuConv }[];
  readonly #up: GpuConv[];
  readonly #out: GpuConv;
  readonly #owned: GpuTensor[] = [];

  /** Uploads `weights` to the runner's device. */
  constructor(private readonly r: GpuRunner, private readonly weights: VqvaeWeights) {
    const up = (p: ConvWeights, transposed: boolean): GpuConv => {
      const [a, b, k] = p.shape;
      const w = r.tensor(p.weight, "vqvae.w");
      const bias = r.tensor(p.bias, "vqvae.b");
      this.#owned.push(w, bias);
      return transposed ? { w, bias, cin: a, cout: b, k } : { w, bias, cin: b, cout: a, k };
    };
    this.#conv0 = up(weights.conv0, false);
    this.#res = weights.res.map((x) => ({
      a: up(x.conv0, false),
      b: up(x.conv1, false),
      c: up(x.conv2, false),
    }));
    this.#up = weights.up.map((u) => up(u, true));
    this.#out = up(weights.out, false);
  }

  /** Decodes every sequence in one batch; 64×64 float masks, row-major. */
  async decode(codes: readonly (readonly number[])[]): Promise<Float32Array[]> {
    if (codes.length === 0) return [];
    const r = this.r;
    const n = codes.length;
    const { dim, embedding } = this.weights;
    const grid = new Float32Array(n * CODES_PER_MASK * dim);
    codes.forEach((seq, i) => {
      checkCodes(seq, this.weights.codes);
      seq.forEach((code, pos) =>
        grid.set(embedding.subarray(code * dim, (code + 1) * dim), (i * 16 + pos) * dim)
      );
    });
    const temps: GpuTensor[] = [];
    const fresh = (len: number) => {
      const t = r.zeros(len, "vqvae.act");
      temps.push(t);
      return t;
    };
    const conv = async (x: Act, p: GpuConv, pad: number, relu: boolean): Promise<Act> => {
      const args = {
        x: x.t,
        w: p.w,
        bias: p.bias,
        batch: n,
        height: x.h,
        width: x.w,
        cin: p.cin,
        cout: p.cout,
        k: p.k,
        pad,
        relu,
      };
      const [h, w] = conv2dOutSize({ ...args, out: x.t });
      const out = fresh(n * h * w * p.cout);
      await conv2d(r, { ...args, out });
      return { t: out, h, w, c: p.cout };
    };
    try {
      const input = r.tensor(grid, "vqvae.codes");
      temps.push(input);
      let x = await conv({ t: input, h: 4, w: 4, c: dim }, this.#conv0, 0, true);
      for (const b of this.#res) {
        const y1 = await conv(x, b.a, 1, true);
        const y2 = await conv(y1, b.b, 1, true);
        const y3 = await conv(y2, b.c, 0, false);
        const sum = fresh(y3.t.length);
        await add(r, { a: y3.t, b: x.t, out: sum, n: n * y3.h * y3.w * y3.c });
        x = { ...y3, t: sum };
      }
      for (const u of this.#up) {
        const args = {
          x: x.t,
          w: u.w,
          bias: u.bias,
          batch: n,
          height: x.h,
          width: x.w,
          cin: u.cin,
          cout: u.cout,
          k: u.k,
          pad: 1,
          stride: 2,
          relu: true,
        };
        const [h, w] = convTransposeOutSize({ ...args, out: x.t });
        const out = fresh(n * h * w * u.cout);
        await convTranspose(r, { ...args, out });
        x = { t: out, h, w, c: u.cout };
      }
      const m = await conv(x, this.#out, 0, false);
      const data = await r.read(m.t, n * m.h * m.w);
      const size = m.h * m.w;
      return codes.map((_, i) => data.slice(i * size, (i + 1) * size));
    } finally {
      for (const t of temps) t.buffer.destroy();
    }
  }

  /** Frees the decoder's weights (the device stays with its owner). */
  close(): Promise<void> {
    for (const t of this.#owned) t.buffer.destroy();
    return Promise.resolve();
  }
}
