import type { HeadLayout } from "../../lib/webgpu/ops.ts";
import { flashAttention, flashScratchLengths } from "../../lib/webgpu/ops_flash.ts";
import { headIndex } from "./cpu_reference.ts";
import { assertClose, gpuTest, maxAbs, Rng } from "./gpu_test_util.ts";

interface FlashCase {
  name: string;
  B: number;
  Hq: number;
  Hkv: number;
  T: number;
  D: number;
  P: number;
  capacity: number;
  softcap: number;
  window: number;
  layout: HeadLayout;
  /** Per batch row (firstKey, prefixLen), or null for `causal` over all keys. */
  rows: [number, number][] | null;
  causal: boolean;
  splits: number;
  tile?: { br: number; bc: number };
}

/**
 * Plain softmax attention in float64 with the kernel's visibility rule: key j is seen by the query
 * at cache position i = P + t when first <= j < P + T, (j < prefix or j <= i) and i - j < window.
 */
function flashRef(
  c: FlashCase,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  scale: number,
): Float64Array {
  const { B, Hq, Hkv, T, D, P, capacity } = c;
  const out = new Float64Array(B * T * Hq * D);
  const qd = { T, H: Hq, D };
  for (let b = 0; b < B; b++) {
    const [first, prefix] = c.rows ? c.rows[b] : [0, c.causal ? 0 : Infinity];
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / (Hq / Hkv));
      for (let t = 0; t < T; t++) {
        const i = P + t;
        const keys: number[] = [];
        const scores: number[] = [];
        for (let j = first; j < P + T; j++) {
          if (!(j < prefix || j <= i)) continue;
          if (c.window > 0 && i - j >= c.window) continue;
          let s = 0;
          const kb = ((b * Hkv + kvh) * capacity + j) * D;
          for (let d = 0; d < D; d++) s += q[headIndex(c.layout, qd, b, t, h, d)] * k[kb + d];
          s *= scale;
          if (c.softcap > 0) s = Math.tanh(s / c.softcap) * c.softcap;
          keys.push(j);
          scores.push(s);
        }
        const mx = Math.max(...scores);
        const p = scores.map((s) => Math.exp(s - mx));
        const sum = p.reduce((x, y) => x + y, 0);
        for (let d = 0; d < D; d++) {
          let o = 0;
          keys.forEach((j, n) => o += p[n] * v[((b * Hkv + kvh) * capacity + j) * D + d]);
          out[headIndex(c.layout, qd, b, t, h, d)] = keys.length ? o / sum : 0;
        }
      }
    }
  }
  return out;
}

const BASE = { softcap: 0, window: 0, layout: "bthd" as HeadLayout, causal: false, splits: 1 };

const CASES: FlashCase[] = [
  {
    ...BASE,
    name: "prefix-LM prefill, MQA 4/1, left padding",
    B: 2,
    Hq: 4,
    Hkv: 1,
    T: 13,
    D: 16,
    P: 0,
    capacity: 16,
    rows: [[0, 13], [4, 13]],
  },
  {
    ...BASE,
    name: "prefix 10 / 7 of 13 then causal, GQA 4/2, D=12",
    B: 2,
    Hq: 4,
    Hkv: 2,
    T: 13,
    D: 12,
    P: 0,
    capacity: 13,
    rows: [[0, 10], [2, 7]],
  },
  {
    ...BASE,
    name: "decode T=1 past 70, GQA 8/4, softcap 50, D=72",
    B: 2,
    Hq: 8,
    Hkv: 4,
    T: 1,
    D: 72,
    P: 70,
    capacity: 80,
    softcap: 50,
    rows: [[3, 0], [0, 0]],
  },
  {
    ...BASE,
    name: "3 new tokens after past 9, causal, head-major, D=256",
    B: 1,
    Hq: 2,
    Hkv: 2,
    T: 3,
    D: 256,
    P: 9,
    capacity: 12,
    layout: "bhtd",
    rows: null,
    causal: true,
  },
  {
    ...BASE,
    name: "150 keys, window 40, softcap 5, causal, D=8",
    B: 1,
    Hq: 2,
    Hkv: 1,
    T: 50,
    D: 8,
    P: 100,
    capacity: 150,
    softcap: 5,
    window: 40,
    rows: null,
    causal: true,
  },
  {
    ...BASE,
    name: "split-KV decode: 5 splits over 701 keys, MQA 8/1, D=256, softcap 30",
    B: 2,
    Hq: 8,
    Hkv: 1,
    T: 1,
    D: 256,
    P: 700,
    capacity: 703,
    softcap: 30,
    rows: [[0, 0], [37, 0]],
    splits: 5,
  },
  {
    ...BASE,
    name: "split-KV 3 splits, 3 tokens, window 20, head-major, D=40",
    B: 1,
    Hq: 3,
    Hkv: 1,
    T: 3,
    D: 40,
    P: 61,
    capacity: 64,
    window: 20,
    layout: "bhtd",
    rows: [[5, 62]],
    splits: 3,
  },
  {
    ...BASE,
    name: "8 query rows × 16 keys a tile (the GPU shape), GQA 8/2, 3 splits, D=20",
    B: 2,
    Hq: 8,
    Hkv: 2,
    T: 5,
    D: 20,
    P: 40,
    capacity: 48,
    softcap: 20,
    rows: [[0, 45], [6, 43]],
    splits: 3,
    tile: { br: 8, bc: 16 },
  },
  {
    ...BASE,
    name: "full attention 70 tokens, 1 head, D=1",
    B: 1,
    Hq: 1,
    Hkv: 1,
    T: 70,
    D: 1,
    P: 0,
    capacity: 70,
    rows: null,
  },
];

/** Tolerance: max abs err <= 2e-5 · max|v| (softmax-weighted means of f32 values). */
const TOL = 2e-5;

CASES.forEach((c, idx) => {
  gpuTest(`webgpu flash attention: ${c.name}`, async (r) => {
    const rng = new Rng(1100 + idx);
    const { B, Hq, Hkv, T, D, P, capacity } = c;
    const q = rng.uniform(B * T * Hq * D, -2, 2);
    const k = rng.uniform(B * Hkv * capacity * D, -2, 2);
    const v = rng.uniform(B * Hkv * capacity * D);
    const scale = Math.fround(1 / Math.sqrt(D));
    const out = r.zeros(B * T * Hq * D);
    const n = flashScratchLengths(c.splits, B, Hq, T, D);
    await flashAttention(r, {
      q: r.tensor(q),
      k: r.tensor(k),
      v: r.tensor(v),
      out,
      batch: B,
      heads: Hq,
      kvHeads: Hkv,
      tokens: T,
      headDim: D,
      past: P,
      capacity,
      scale,
      softcap: c.softcap,
      window: c.window,
      rows: c.rows ? r.tensor(Uint32Array.from(c.rows.flat())) : undefined,
      causal: c.causal,
      layout: c.layout,
      splits: c.splits,
      scratch: c.splits > 1 ? { part: r.zeros(n.part), ml: r.zeros(n.ml) } : undefined,
      tile: c.tile,
    });
    const want = flashRef(c, q, k, v, scale);
    assertClose(await r.read(out), want, TOL * maxAbs(v), `flash attention (${rng.tag})`);
  });
});
