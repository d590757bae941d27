import { attention, type HeadLayout, kvAppend, rope } from "../../lib/webgpu/ops.ts";
import { attentionRef, headIndex, ropeRef } from "./cpu_reference.ts";
import { assertClose, assertExactF32, gpuTest, maxAbs, Rng } from "./gpu_test_util.ts";

/**
 * RoPE tolerance: max abs err <= 4e-7 · (maxPos + 16) · max|x|. The angle pos·θ^(-2i/D) is an f32
 * product (as in HF), so its error grows with the position.
 */
const ROPE_CASES: {
  B: number;
  T: number;
  H: number;
  D: number;
  maxPos: number;
  layout: HeadLayout;
}[] = [
  { B: 1, T: 1, H: 1, D: 2, maxPos: 4, layout: "bthd" },
  { B: 2, T: 5, H: 3, D: 72, maxPos: 300, layout: "bthd" },
  { B: 2, T: 7, H: 2, D: 256, maxPos: 1100, layout: "bhtd" },
];

ROPE_CASES.forEach((c, idx) => {
  gpuTest(`webgpu rope ${c.layout} B${c.B} T${c.T} H${c.H} D${c.D} pos<${c.maxPos}`, async (r) => {
    const rng = new Rng(500 + idx);
    const x = rng.uniform(c.B * c.T * c.H * c.D, -2, 2);
    const pos = Int32Array.from({ length: c.B * c.T }, () => rng.int(c.maxPos));
    const xt = r.tensor(x);
    await rope(r, {
      x: xt,
      positions: r.tensor(pos),
      batch: c.B,
      tokens: c.T,
      heads: c.H,
      headDim: c.D,
      layout: c.layout,
    });
    const want = ropeRef(x, pos, c, c.layout);
    const tol = 4e-7 * (c.maxPos + 16) * maxAbs(x);
    assertClose(await r.read(xt), want, tol, `rope (${rng.tag})`);
  });
});

gpuTest("webgpu kv_append into a cache at past 3 (bthd and bhtd sources)", async (r) => {
  const rng = new Rng(520);
  const [B, T, H, D, P, cap] = [2, 3, 2, 5, 3, 8];
  for (const layout of ["bthd", "bhtd"] as const) {
    const src = rng.uniform(B * T * H * D);
    const init = rng.uniform(B * H * cap * D);
    const cache = r.tensor(init);
    await kvAppend(r, {
      src: r.tensor(src),
      cache,
      batch: B,
      tokens: T,
      heads: H,
      headDim: D,
      past: P,
      capacity: cap,
      layout,
    });
    const want = Float64Array.from(init);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        for (let h = 0; h < H; h++) {
          for (let d = 0; d < D; d++) {
            want[((b * H + h) * cap + P + t) * D + d] =
              src[headIndex(layout, { T, H, D }, b, t, h, d)];
          }
        }
      }
    }
    assertExactF32(await r.read(cache), want, `kv_append ${layout} (${rng.tag})`);
  }
});

interface AttnCase {
  name: string;
  B: number;
  Hq: number;
  Hkv: number;
  T: number;
  D: number;
  P: number;
  capacity: number;
  softcap: number;
  causal: boolean;
  window: number;
  layout: HeadLayout;
  padLeft: number[];
  useMask: boolean;
}

const ATTN: AttnCase[] = [
  {
    name: "prefix-LM prefill, MQA 4/1, left padding",
    B: 2,
    Hq: 4,
    Hkv: 1,
    T: 13,
    D: 16,
    P: 0,
    capacity: 16,
    softcap: 0,
    causal: false,
    window: 0,
    layout: "bthd",
    padLeft: [0, 4],
    useMask: true,
  },
  {
    name: "decode T=1 with past 70, GQA 8/4, softcap 50",
    B: 2,
    Hq: 8,
    Hkv: 4,
    T: 1,
    D: 72,
    P: 70,
    capacity: 80,
    softcap: 50,
    causal: false,
    window: 0,
    layout: "bthd",
    padLeft: [3, 0],
    useMask: true,
  },
  {
    name: "3 new tokens after past 9, causal, head-major, D=256",
    B: 1,
    Hq: 2,
    Hkv: 2,
    T: 3,
    D: 256,
    P: 9,
    capacity: 12,
    softcap: 0,
    causal: true,
    window: 0,
    layout: "bhtd",
    padLeft: [0],
    useMask: false,
  },
  {
    name: "prefill 150 keys (3 chunks), window 40, softcap 5",
    B: 1,
    Hq: 2,
    Hkv: 1,
    T: 50,
    D: 8,
    P: 100,
    capacity: 150,
    softcap: 5,
    causal: true,
    window: 40,
    layout: "bthd",
    padLeft: [0],
    useMask: false,
  },
];

/** Tolerance: max abs err <= 2e-5 · max|v| (softmax-weighted means of f32 values). */
const ATTN_TOL = 2e-5;

ATTN.forEach((c, idx) => {
  gpuTest(`webgpu attention: ${c.name}`, async (r) => {
    const rng = new Rng(540 + idx);
    const { B, Hq, Hkv, T, D, P, capacity } = c;
    const q = rng.uniform(B * T * Hq * D, -2, 2);
    const k = rng.uniform(B * Hkv * capacity * D, -2, 2);
    const v = rng.uniform(B * Hkv * capacity * D);
    const mask = new Float32Array(B * capacity);
    c.padLeft.forEach((n, b) =>
      mask.fill(b % 2 ? -Infinity : -1e30, b * capacity, b * capacity + n)
    );
    const scale = 1 / Math.sqrt(D);
    const out = r.zeros(B * T * Hq * D);
    await attention(r, {
      q: r.tensor(q),
      k: r.tensor(k),
      v: r.tensor(v),
      out,
      mask: c.useMask ? r.tensor(mask) : undefined,
      batch: B,
      heads: Hq,
      kvHeads: Hkv,
      tokens: T,
      headDim: D,
      past: P,
      capacity,
      scale,
      softcap: c.softcap,
      causal: c.causal,
      window: c.window,
      layout: c.layout,
    });
    const want = attentionRef({
      q,
      k,
      v,
      mask: c.useMask ? mask : null,
      maskStride: capacity,
      B,
      Hq,
      Hkv,
      T,
      D,
      P,
      capacity,
      scale: Math.fround(scale),
      softcap: c.softcap,
      causal: c.causal,
      window: c.window,
      layout: c.layout,
    });
    assertClose(await r.read(out), want, ATTN_TOL * maxAbs(v), `attention (${rng.tag})`);
  });
});
