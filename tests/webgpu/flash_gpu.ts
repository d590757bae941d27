import assert from "node:assert/strict";
import type { HeadLayout } from "../../lib/webgpu/ops.ts";
import { bytesToWords } from "../../lib/webgpu/weights.ts";
import { fromFloat32, toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { flashAttention, flashScratchLengths, kvAppendF16 } from "../../lib/webgpu/ops_flash.ts";
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
  /** Store the cache as f16 through kvAppendF16 (the reference sees the rounded values). */
  f16?: boolean;
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
    name: "f16 KV cache, decode past 90, GQA 4/2, softcap 50, 2 splits, D=24",
    B: 2,
    Hq: 4,
    Hkv: 2,
    T: 1,
    D: 24,
    P: 90,
    capacity: 96,
    softcap: 50,
    rows: [[0, 0], [11, 0]],
    splits: 2,
    f16: true,
  },
  {
    ...BASE,
    name: "f16 KV cache, prefix-LM prefill 20 tokens, MQA 4/1, head-major, D=64",
    B: 1,
    Hq: 4,
    Hkv: 1,
    T: 20,
    D: 64,
    P: 0,
    capacity: 24,
    layout: "bhtd",
    rows: [[2, 20]],
    f16: true,
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
    let k = rng.uniform(B * Hkv * capacity * D, -2, 2);
    let v = rng.uniform(B * Hkv * capacity * D);
    let kt = r.tensor(k);
    let vt = r.tensor(v);
    if (c.f16) {
      // Fill f16 caches through kvAppendF16 from [B, capacity, Hkv, D] sources; the reference
      // sees the f16-rounded values.
      const half = (x: Float32Array) => toFloat32(fromFloat32(x, "F16"), "F16");
      const toSrc = (x: Float32Array) => {
        const out = new Float32Array(x.length);
        for (let b = 0; b < B; b++) {
          for (let h = 0; h < Hkv; h++) {
            for (let j = 0; j < capacity; j++) {
              for (let d = 0; d < D; d++) {
                out[((b * capacity + j) * Hkv + h) * D + d] =
                  x[((b * Hkv + h) * capacity + j) * D + d];
              }
            }
          }
        }
        return out;
      };
      const append = async (x: Float32Array) => {
        const cache = r.zeros((B * Hkv * capacity * D) / 2);
        await kvAppendF16(r, {
          src: r.tensor(toSrc(x)),
          cache,
          batch: B,
          tokens: capacity,
          heads: Hkv,
          headDim: D,
          past: 0,
          capacity,
        });
        return cache;
      };
      kt = await append(k);
      vt = await append(v);
      k = half(k);
      v = half(v);
    }
    const scale = Math.fround(1 / Math.sqrt(D));
    const out = r.zeros(B * T * Hq * D);
    const n = flashScratchLengths(c.splits, B, Hq, T, D);
    await flashAttention(r, {
      q: r.tensor(q),
      k: kt,
      v: vt,
      kvF16: c.f16,
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

gpuTest("webgpu kv_append_f16 into an f16 cache at past 3 (bthd and bhtd sources)", async (r) => {
  const rng = new Rng(1150);
  const [B, T, H, D, P, cap] = [2, 3, 2, 6, 3, 8];
  for (const layout of ["bthd", "bhtd"] as const) {
    const src = rng.uniform(B * T * H * D, -4, 4);
    const initHalves = fromFloat32(rng.uniform(B * H * cap * D), "F16");
    const cache = r.tensor(bytesToWords(initHalves));
    await kvAppendF16(r, {
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
    const words = await r.readU32(cache);
    const got = toFloat32(new Uint8Array(words.buffer, 0, 2 * B * H * cap * D), "F16");
    const want = toFloat32(initHalves, "F16");
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
    // Untouched positions exact; written ones rounded to f16 (either way: one f16 ulp).
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= Math.abs(want[i]) * 2 ** -10)) {
        assert.fail(
          `kv_append_f16 ${layout}: element ${i} is ${got[i]}, want ${want[i]} (${rng.tag})`,
        );
      }
    }
  }
});
