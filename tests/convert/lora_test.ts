/**
 * `convert --lora`: PEFT LoRA adapters built here on the tiny fixture models (random non-zero A
 * and B, saved under PEFT's key names), merged tensors checked against an independent float64
 * W + scale·B·A; rsLoRA, rank/alpha patterns, fan_in_fan_out, modules_to_save, several adapters,
 * a bf16 base (rounded once), errors through the library and the CLI, and the converted model's
 * logits (changed by an adapter, unchanged with B = 0, equal to converting pre-merged weights).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { convertCommand } from "../../cli/convert.ts";
import { fromFloat32 } from "../../lib/checkpoint/dtype.ts";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { writeSafetensors } from "../../lib/checkpoint/safetensors.ts";
import type { DType, TensorRef, WritableTensor } from "../../lib/checkpoint/tensor.ts";
import { InputError, UsageError } from "../../lib/errors.ts";
import { mergeLoraAdapters } from "../../lib/lora/apply.ts";
import { mergedTensor, type TensorEdit } from "../../lib/lora/merge.ts";
import { roundTo } from "../../lib/lora/round.ts";
import { fixtureCases } from "../generate/fixture_models.ts";
import { OnnxModel, relErr } from "./onnx_runner.ts";

const FIX = new URL("../fixtures/models/", import.meta.url).pathname;
const PG1 = join(FIX, "pg1-tiny", "hf");
const PG2 = join(FIX, "pg2-tiny", "hf");
const ROOT = new URL("../..", import.meta.url).pathname;

// Canonical names of the tensors the adapters below change.
const TEXT_Q0 = "language_model.model.layers.0.self_attn.q_proj.weight";
const TEXT_DOWN1 = "language_model.model.layers.1.mlp.down_proj.weight";
const VIS_Q1 = "vision_tower.vision_model.encoder.layers.1.self_attn.q_proj.weight";
const VIS_FC1 = "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight";
const PROJ_W = "multi_modal_projector.linear.weight";
const PROJ_B = "multi_modal_projector.linear.bias";

/** PEFT module paths (transformers >= 4.52 names) of those tensors. */
const PEFT_MODULE: Readonly<Record<string, string>> = {
  [TEXT_Q0]: "model.language_model.layers.0.self_attn.q_proj",
  [TEXT_DOWN1]: "model.language_model.layers.1.mlp.down_proj",
  [VIS_Q1]: "model.vision_tower.vision_model.encoder.layers.1.self_attn.q_proj",
  [VIS_FC1]: "model.vision_tower.vision_model.encoder.layers.0.mlp.fc1",
};

/** Deterministic values in [-1, 1), never 0. */
function random(seed: number, n: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
    out[i] = u * 2 - 1 || 0.5;
  }
  return out;
}

/** A tensor to store in an adapter. */
interface Stored {
  readonly key: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** LoRA A [r, in] and B [out, r] for `module`, random (B zero when `zeroB`). */
function loraPair(
  module: string,
  r: number,
  out: number,
  inp: number,
  seed: number,
  zeroB = false,
) {
  const a = random(seed, r * inp);
  const b = zeroB ? new Float32Array(out * r) : random(seed + 1, out * r);
  const stored: Stored[] = [
    { key: `base_model.model.${module}.lora_A.weight`, shape: [r, inp], data: a },
    { key: `base_model.model.${module}.lora_B.weight`, shape: [out, r], data: b },
  ];
  return { a, b, stored };
}

/** Writes adapter_config.json (PEFT-style, `config` over defaults) and adapter_model.safetensors. */
async function writeAdapter(
  dir: string,
  config: Record<string, unknown>,
  tensors: readonly Stored[],
  dtype: "F32" | "BF16" = "F32",
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const full = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: "tiny",
    r: 4,
    lora_alpha: 8,
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    use_dora: false,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    init_lora_weights: true,
    ...config,
  };
  await Deno.writeTextFile(join(dir, "adapter_config.json"), JSON.stringify(full, null, 2));
  const specs: WritableTensor[] = tensors.map((t) => ({
    name: t.key,
    dtype,
    shape: t.shape,
    data: () => fromFloat32(t.data, dtype),
  }));
  await writeSafetensors(join(dir, "adapter_model.safetensors"), specs, { format: "pt" });
  return dir;
}

/** Float64 values of F32 or BF16 bytes, decoded here. */
function decode(bytes: Uint8Array, dtype: DType): Float64Array {
  const copy = bytes.slice();
  if (dtype === "F32") return Float64Array.from(new Float32Array(copy.buffer));
  assert.equal(dtype, "BF16");
  const half = new Uint16Array(copy.buffer);
  const f = new Float32Array(half.length);
  const bits = new Uint32Array(f.buffer);
  for (let i = 0; i < half.length; i++) bits[i] = half[i] << 16;
  return Float64Array.from(f);
}

async function values(ref: TensorRef): Promise<Float64Array> {
  return decode(await ref.read(), ref.dtype);
}

/** Independent W + s·B·A in float64 (B [out, r], A [r, in]). */
function reference(
  w: Float64Array,
  b: Float32Array,
  a: Float32Array,
  r: number,
  s: number,
): Float64Array {
  const inp = a.length / r;
  const out = new Float64Array(w);
  for (let o = 0; o < w.length / inp; o++) {
    for (let i = 0; i < inp; i++) {
      let d = 0;
      for (let k = 0; k < r; k++) d += b[o * r + k] * a[k * inp + i];
      out[o * inp + i] += s * d;
    }
  }
  return out;
}

/** max |got - Math.fround(want)|, and max |want - base| (how much the merge changed). */
function compareF32(got: Float64Array, want: Float64Array, base: Float64Array) {
  let err = 0;
  let moved = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs(got[i] - Math.fround(want[i])));
    moved = Math.max(moved, Math.abs(want[i] - base[i]));
  }
  return { err, moved };
}

/** Asserts merged `name` equals the float32 rounding of `want` (to 1 ulp) and moved from base. */
async function assertMerged(
  merged: ReadonlyMap<string, TensorRef>,
  base: ReadonlyMap<string, TensorRef>,
  name: string,
  want: Float64Array,
): Promise<void> {
  const got = await values(merged.get(name)!);
  const { err, moved } = compareF32(got, want, await values(base.get(name)!));
  const ulp = Math.max(...want.map(Math.abs)) * 2 ** -23;
  assert.ok(err <= ulp, `${name}: off by ${err} (ulp ${ulp})`);
  assert.ok(moved > 0.05, `${name}: the adapter barely changes it (${moved})`);
}

async function withDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "pg-lora-" });
  try {
    return await body(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The three adapted tensors of the plain adapter, with their A, B and PEFT module paths. */
function plainPairs(zeroB = false) {
  return {
    q0: { name: TEXT_Q0, r: 4, ...loraPair(PEFT_MODULE[TEXT_Q0], 4, 48, 48, 11, zeroB) },
    down1: { name: TEXT_DOWN1, r: 4, ...loraPair(PEFT_MODULE[TEXT_DOWN1], 4, 48, 96, 21, zeroB) },
    visq1: { name: VIS_Q1, r: 4, ...loraPair(PEFT_MODULE[VIS_Q1], 4, 32, 32, 31, zeroB) },
  };
}

Deno.test("lora: plain adapter (HF >= 4.52 names) merges W + alpha/r·B·A, vision and text", () =>
  withDir(async (dir) => {
    const pairs = plainPairs();
    const adapter = await writeAdapter(
      join(dir, "plain"),
      { r: 4, lora_alpha: 6, target_modules: ["q_proj", "down_proj"] },
      Object.values(pairs).flatMap((p) => p.stored),
    );
    const ck = await openCheckpoint(PG1);
    for (const scale of [1, 0.5]) {
      const m = await mergeLoraAdapters(ck.tensors, [adapter], scale);
      try {
        for (const p of Object.values(pairs)) {
          const w = await values(ck.tensors.get(p.name)!);
          await assertMerged(m.tensors, ck.tensors, p.name, reference(w, p.b, p.a, 4, 1.5 * scale));
        }
        // Everything else is the base's own tensor.
        const changed = [...m.tensors].filter(([n, ref]) => ref !== ck.tensors.get(n));
        assert.deepEqual(changed.map(([n]) => n).sort(), [TEXT_DOWN1, TEXT_Q0, VIS_Q1].sort());
        assert.equal(m.adapters[0].loraLayers, 3);
        // A partial read (the converter reads row chunks) is the same bytes as the whole.
        const ref = m.tensors.get(TEXT_DOWN1)!;
        const whole = await ref.read();
        for (const [off, len] of [[96 * 4 * 3, 96 * 4 * 5], [10, 999], [ref.byteLength - 6, 6]]) {
          assert.deepEqual(await ref.read(off, len), whole.subarray(off, off + len));
        }
      } finally {
        m.close();
      }
    }
    ck.close();
  }));

Deno.test("lora: merging in blocks of rows gives the same bytes, for any read range", async () => {
  const ck = await openCheckpoint(PG2);
  try {
    const w = ck.tensors.get(TEXT_DOWN1)!;
    const [out, inp] = w.shape;
    const q = loraPair("m", 3, out, inp, 121);
    const ref = (name: string, shape: number[], data: Float32Array): TensorRef => ({
      name,
      dtype: "F32",
      shape,
      byteLength: data.length * 4,
      read: (o = 0, n = data.length * 4 - o) =>
        Promise.resolve(new Uint8Array(data.buffer).slice(o, o + n)),
    });
    const lora: TensorEdit = {
      kind: "lora",
      a: ref("a", [3, inp], q.a),
      b: ref("b", [out, 3], q.b),
      scale: 0.7,
    };
    const replaced = random(122, out * inp);
    const edits: TensorEdit[][] = [
      [lora],
      [lora, { kind: "replace", ref: ref("w", [out, inp], replaced) }, lora],
    ];
    for (const list of edits) {
      const whole = await mergedTensor(w, list, out).read();
      const want = reference(
        list.length === 1
          ? await values(w)
          : reference(Float64Array.from(replaced), q.b, q.a, 3, 0),
        q.b,
        q.a,
        3,
        0.7,
      );
      const got = decode(whole, "F32");
      want.forEach((x, i) => assert.ok(Math.abs(got[i] - Math.fround(x)) <= 1e-6, `element ${i}`));
      for (const rows of [1, 5, 7]) {
        const t = mergedTensor(w, list, rows);
        assert.deepEqual(await t.read(), whole, `blocks of ${rows} rows`);
        const row = inp * 4;
        for (const [off, len] of [[row * 6 + 12, row * 9], [3, row * 20], [row * (out - 1), row]]) {
          assert.deepEqual(await t.read(off, len), whole.subarray(off, off + len), `${off}+${len}`);
        }
      }
    }
  } finally {
    ck.close();
  }
});

Deno.test("lora: rsLoRA scales by alpha/sqrt(r); rank_pattern and alpha_pattern per module", () =>
  withDir(async (dir) => {
    const q0 = loraPair(PEFT_MODULE[TEXT_Q0], 4, 48, 48, 41);
    const fc1 = loraPair(PEFT_MODULE[VIS_FC1], 2, 64, 32, 51);
    const ck = await openCheckpoint(PG1);
    try {
      const rs = await writeAdapter(
        join(dir, "rs"),
        { r: 4, lora_alpha: 6, use_rslora: true, target_modules: ["q_proj"] },
        q0.stored,
      );
      let m = await mergeLoraAdapters(ck.tensors, [rs]);
      const w = await values(ck.tensors.get(TEXT_Q0)!);
      await assertMerged(m.tensors, ck.tensors, TEXT_Q0, reference(w, q0.b, q0.a, 4, 6 / 2));
      m.close();
      // fc1 at rank 2 (rank_pattern) and q_proj at alpha 12 (alpha_pattern), both regexes.
      const pat = await writeAdapter(join(dir, "pat"), {
        r: 4,
        lora_alpha: 6,
        target_modules: "model\\..*\\.(q_proj|fc1)",
        rank_pattern: { "layers\\.0\\.mlp\\.fc1": 2 },
        alpha_pattern: { "language_model.*q_proj": 12 },
      }, [...q0.stored, ...fc1.stored]);
      m = await mergeLoraAdapters(ck.tensors, [pat]);
      await assertMerged(m.tensors, ck.tensors, TEXT_Q0, reference(w, q0.b, q0.a, 4, 12 / 4));
      const wf = await values(ck.tensors.get(VIS_FC1)!);
      await assertMerged(m.tensors, ck.tensors, VIS_FC1, reference(wf, fc1.b, fc1.a, 2, 6 / 2));
      m.close();
    } finally {
      ck.close();
    }
  }));

Deno.test("lora: fan_in_fan_out is ignored for nn.Linear layers, as PEFT does (no transpose)", () =>
  withDir(async (dir) => {
    // A square layer, where a transposed update would fit the shape and differ.
    const q = loraPair(PEFT_MODULE[VIS_Q1], 4, 32, 32, 61);
    const adapter = await writeAdapter(
      join(dir, "fifo"),
      { r: 4, lora_alpha: 4, fan_in_fan_out: true, target_modules: ["q_proj"] },
      q.stored,
    );
    const ck = await openCheckpoint(PG1);
    const m = await mergeLoraAdapters(ck.tensors, [adapter]);
    try {
      const w = await values(ck.tensors.get(VIS_Q1)!);
      const want = reference(w, q.b, q.a, 4, 1);
      await assertMerged(m.tensors, ck.tensors, VIS_Q1, want);
      assert.match(m.adapters[0].notes.join(" "), /fan_in_fan_out/);
      // The transposed update is a different matrix, so this test tells the two apart.
      const got = await values(m.tensors.get(VIS_Q1)!);
      let transposedErr = 0;
      for (let o = 0; o < 32; o++) {
        for (let i = 0; i < 32; i++) {
          const t = w[o * 32 + i] + (want[i * 32 + o] - w[i * 32 + o]);
          transposedErr = Math.max(transposedErr, Math.abs(got[o * 32 + i] - t));
        }
      }
      assert.ok(transposedErr > 0.05, `transposed update matches too (${transposedErr})`);
    } finally {
      m.close();
      ck.close();
    }
  }));

Deno.test("lora: modules_to_save weights replace the base module; adapters apply in order", () =>
  withDir(async (dir) => {
    const ck = await openCheckpoint(PG2);
    const [out, inp] = ck.tensors.get(PROJ_W)!.shape;
    const projW = random(71, out * inp);
    const projB = random(72, out);
    const q0 = loraPair(PEFT_MODULE[TEXT_Q0], 4, 64, 40, 73);
    // PEFT saves modules_to_save as base_model.model.<module>.<param> (adapter name stripped).
    const first = await writeAdapter(join(dir, "first"), {
      target_modules: ["q_proj"],
      modules_to_save: ["multi_modal_projector"],
    }, [
      ...q0.stored,
      {
        key: "base_model.model.model.multi_modal_projector.linear.weight",
        shape: [out, inp],
        data: projW,
      },
      {
        key: "base_model.model.model.multi_modal_projector.linear.bias",
        shape: [out],
        data: projB,
      },
    ]);
    // The second adapter uses the legacy names (transformers < 4.52) and adapts the replaced
    // projector and the already adapted q_proj.
    const proj = loraPair("multi_modal_projector.linear", 2, out, inp, 74);
    const q0b = loraPair("language_model.model.layers.0.self_attn.q_proj", 2, 64, 40, 75);
    const second = await writeAdapter(
      join(dir, "second"),
      { r: 2, lora_alpha: 1, target_modules: ["linear", "q_proj"] },
      [...proj.stored, ...q0b.stored],
    );
    const m = await mergeLoraAdapters(ck.tensors, [first, second], 2);
    try {
      assert.deepEqual(
        await values(m.tensors.get(PROJ_B)!),
        Float64Array.from(projB),
        "the bias is the stored one",
      );
      const projWant = reference(Float64Array.from(projW), proj.b, proj.a, 2, 0.5 * 2);
      await assertMerged(m.tensors, ck.tensors, PROJ_W, projWant);
      const w = await values(ck.tensors.get(TEXT_Q0)!);
      const once = reference(w, q0.b, q0.a, 4, 2 * 2);
      await assertMerged(m.tensors, ck.tensors, TEXT_Q0, reference(once, q0b.b, q0b.a, 2, 0.5 * 2));
      assert.equal(m.adapters[0].replaced, 2);
    } finally {
      m.close();
      ck.close();
    }
  }));

/** The correctly rounded bfloat16 of `x` (midpoint compare in float64; finite values). */
function bf16Of(x: number): number {
  const f = new Float32Array([x]);
  const bits = new Uint32Array(f.buffer);
  const lo = bits[0] & 0xffff0000;
  const down = new Float32Array(new Uint32Array([lo]).buffer)[0];
  const up = new Float32Array(new Uint32Array([lo + 0x10000]).buffer)[0];
  // f may have rounded away from x; compare x itself against the two bf16 neighbours of f.
  const [a, b] = Math.abs(down) <= Math.abs(x) ? [down, up] : [
    new Float32Array(new Uint32Array([lo - 0x10000]).buffer)[0],
    down,
  ];
  const mid = (a + b) / 2;
  const dist = Math.abs(x - mid);
  if (dist === 0) return ((new Uint32Array(new Float32Array([a]).buffer)[0] >>> 16) & 1) ? b : a;
  return Math.abs(x) > Math.abs(mid) === Math.abs(b) > Math.abs(a) ? b : a;
}

Deno.test("lora: round once to bf16 (no double rounding through float32)", () => {
  const ulp = 2 ** -7;
  // Just above a bf16 midpoint, by less than half a float32 ulp: float32 lands on the midpoint.
  const xs = [1 + ulp / 2 + 2 ** -30, -(1 + ulp / 2 + 2 ** -30), 1 + ulp / 2 - 2 ** -30, 3.5];
  for (const x of random(81, 2000)) xs.push(x * 1000);
  const got = decode(roundTo(Float64Array.from(xs), "BF16"), "BF16");
  xs.forEach((x, i) => assert.equal(got[i], bf16Of(x), `bf16 of ${x}`));
  assert.equal(got[0], 1 + ulp, "the first value rounds up");
  // Through float32 with plain round-to-nearest the first value would round down to 1.
  assert.equal(Math.fround(xs[0]), 1 + ulp / 2);
});

Deno.test("lora: a bf16 base stays bf16, merged in float64 and rounded once", () =>
  withDir(async (dir) => {
    // A bf16 copy of the pg1 fixture.
    const base = join(dir, "bf16");
    await Deno.mkdir(base);
    await Deno.copyFile(join(PG1, "config.json"), join(base, "config.json"));
    const ck32 = await openCheckpoint(PG1);
    const specs: WritableTensor[] = [];
    for (const [name, ref] of ck32.tensors) {
      const v = Float32Array.from(await values(ref));
      specs.push({ name, dtype: "BF16", shape: ref.shape, data: () => fromFloat32(v, "BF16") });
    }
    await writeSafetensors(join(base, "model.safetensors"), specs, { format: "pt" });
    ck32.close();
    const q = loraPair(PEFT_MODULE[TEXT_DOWN1], 4, 48, 96, 91);
    const adapter = await writeAdapter(join(dir, "a"), { target_modules: ["down_proj"] }, q.stored);
    const ck = await openCheckpoint(base);
    const m = await mergeLoraAdapters(ck.tensors, [adapter]);
    try {
      const ref = m.tensors.get(TEXT_DOWN1)!;
      assert.equal(ref.dtype, "BF16");
      const w = await values(ck.tensors.get(TEXT_DOWN1)!);
      const want = reference(w, q.b, q.a, 4, 2);
      const got = await values(ref);
      let moved = 0;
      want.forEach((x, i) => {
        assert.equal(got[i], bf16Of(x), `element ${i}`);
        moved = Math.max(moved, Math.abs(x - w[i]));
      });
      assert.ok(moved > 0.05);
    } finally {
      m.close();
      ck.close();
    }
  }));

Deno.test("lora: 'all-linear' and exclude_modules select modules as PEFT does", () =>
  withDir(async (dir) => {
    const q0 = loraPair(PEFT_MODULE[TEXT_Q0], 4, 48, 48, 131);
    const vq = loraPair(PEFT_MODULE[VIS_Q1], 4, 32, 32, 132);
    const ck = await openCheckpoint(PG1);
    try {
      const all = await writeAdapter(
        join(dir, "all"),
        { target_modules: "all-linear" },
        [...q0.stored, ...vq.stored],
      );
      const m = await mergeLoraAdapters(ck.tensors, [all]);
      const w = await values(ck.tensors.get(VIS_Q1)!);
      await assertMerged(m.tensors, ck.tensors, VIS_Q1, reference(w, vq.b, vq.a, 4, 2));
      m.close();
    } finally {
      ck.close();
    }
    const excluded = await writeAdapter(
      join(dir, "excl"),
      { target_modules: "all-linear", exclude_modules: ".*vision_tower.*" },
      [...q0.stored, ...vq.stored],
    );
    await assertRefused(
      excluded,
      /layers\.1\.self_attn\.q_proj, which field 'target_modules' \(with 'exclude_modules'\)/,
    );
  }));

/** Expects `mergeLoraAdapters` on pg1 to refuse the adapter with an InputError matching all. */
async function assertRefused(dir: string, ...patterns: RegExp[]): Promise<void> {
  const ck = await openCheckpoint(PG1);
  try {
    await assert.rejects(mergeLoraAdapters(ck.tensors, [dir]), (err: Error) => {
      assert.ok(err instanceof InputError, `${err.name}: ${err.message}`);
      for (const p of patterns) assert.match(err.message, p);
      return true;
    });
  } finally {
    ck.close();
  }
}

Deno.test("lora: bad adapters are InputErrors naming the file and the field or tensor", () =>
  withDir(async (dir) => {
    const q = loraPair(PEFT_MODULE[TEXT_Q0], 4, 48, 48, 101);
    const ok = { target_modules: ["q_proj"] };
    const cases: [Record<string, unknown>, readonly Stored[], RegExp[]][] = [
      [{ ...ok, r: 0 }, q.stored, [/adapter_config\.json: field 'r' must be a positive integer/]],
      [{ ...ok, lora_alpha: "8" }, q.stored, [/field 'lora_alpha'/]],
      [{ target_modules: null }, q.stored, [/field 'target_modules' is missing/]],
      [{ target_modules: ["q_proj", "qkv"] }, q.stored, [/'target_modules': 'qkv' matches no/]],
      [{ target_modules: "(" }, q.stored, [/field 'target_modules' is not a regular/]],
      [{ ...ok, use_dora: true }, q.stored, [/field 'use_dora'.*DoRA/]],
      [{ ...ok, bias: "all" }, q.stored, [/field 'bias' is "all"/]],
      [{ ...ok, r: 8 }, q.stored, [/field 'r' gives .*q_proj rank 8.* rank 4/]],
      [{ target_modules: ["k_proj"] }, q.stored, [
        /q_proj, which field 'target_modules'.*not select/,
      ]],
      [
        { ...ok, layers_to_transform: [1] },
        q.stored,
        [/layers\.0\.self_attn\.q_proj, which field 'target_modules'/],
      ],
      [{ ...ok, modules_to_save: ["lm_head"] }, q.stored, [/'modules_to_save' names 'lm_head'/]],
      // A layer the 2-layer model lacks.
      [
        ok,
        loraPair("model.language_model.layers.5.self_attn.q_proj", 4, 48, 48, 1).stored,
        [/adapter_model\.safetensors: .*layers\.5\.self_attn\.q_proj.* does not have/],
      ],
      [ok, [q.stored[0]], [/lora_B\.weight is missing/]],
      [ok, [q.stored[0], { ...q.stored[1], shape: [47, 4], data: q.b.subarray(0, 188) }], [
        /lora_B\.weight has shape \[47, 4\], expected \[48, 4\]/,
      ]],
      [ok, [...q.stored, {
        key: "base_model.model.model.language_model.embed_tokens.lora_embedding_A",
        shape: [4, 2153],
        data: random(3, 4 * 2153),
      }], [/embed_tokens\.lora_embedding_A.*not supported/]],
      [ok, [...q.stored, {
        key: "base_model.model.model.language_model.norm.weight",
        shape: [47],
        data: random(4, 47),
      }], [/norm\.weight has shape \[47\], the base's .*norm\.weight \[48\]/]],
    ];
    for (const [i, [config, tensors, patterns]] of cases.entries()) {
      await assertRefused(await writeAdapter(join(dir, `bad${i}`), config, tensors), ...patterns);
    }
    // Missing files.
    await assertRefused(join(dir, "nowhere"), /nowhere\/adapter_config\.json: no such file/);
    const noWeights = join(dir, "noweights");
    await Deno.mkdir(noWeights);
    await Deno.writeTextFile(join(noWeights, "adapter_config.json"), JSON.stringify(ok));
    await assertRefused(noWeights, /noweights\/adapter_model\.safetensors: no such file/);
    await Deno.writeTextFile(join(noWeights, "adapter_config.json"), "{r: 4");
    await assertRefused(noWeights, /adapter_config\.json: not valid JSON/);
  }));

/** Runs `pg <args>` as a subprocess. */
async function runPg(args: string[]): Promise<{ code: number; stderr: string }> {
  const perms = ["--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys"];
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...perms, join(ROOT, "main.ts"), ...args],
    env: { PALIGEMMA_MODEL: "" },
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("lora CLI: a missing target or a bad config is exit 3 and one line naming it", () =>
  withDir(async (dir) => {
    const q = loraPair(PEFT_MODULE[TEXT_Q0], 4, 48, 48, 111);
    const missing = await writeAdapter(join(dir, "missing"), { target_modules: ["q_proj"] }, [
      ...q.stored,
      ...loraPair("model.language_model.layers.7.mlp.up_proj", 4, 96, 48, 112).stored,
    ]);
    const badCfg = await writeAdapter(
      join(dir, "bad"),
      { target_modules: ["q_proj"], r: -1 },
      q.stored,
    );
    for (
      const [adapter, pattern] of [
        [missing, /^paligemma: .*missing\/adapter_model\.safetensors: .*layers\.7\.mlp\.up_proj/],
        [badCfg, /^paligemma: .*bad\/adapter_config\.json: field 'r' must be a positive integer/],
      ] as const
    ) {
      const r = await runPg(["convert", PG1, join(dir, "out"), "--lora", adapter]);
      assert.equal(r.code, 3, r.stderr);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], pattern);
    }
    // Nothing was written.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["bad", "missing"]);
  }));

Deno.test("lora CLI: --lora-scale must be a number and needs --lora", async () => {
  await assert.rejects(
    convertCommand.run([PG1, "/nonexistent/out", "--lora-scale", "2"]),
    (e: Error) => e instanceof UsageError && /--lora-scale needs --lora/.test(e.message),
  );
  await assert.rejects(
    convertCommand.run([PG1, "/nonexistent/out", "--lora", "x", "--lora-scale", "two"]),
    (e: Error) =>
      e instanceof UsageError && /--lora-scale expects a number, got 'two'/.test(e.message),
  );
});

/** Logits of the first pg1 fixture case through the converted folder `dir`. */
async function logits(dir: string): Promise<Float32Array> {
  const ck = await openCheckpoint(PG1);
  const cfg = ck.config;
  ck.close();
  const c = (await fixtureCases("pg1-tiny"))[0];
  const m = await OnnxModel.load(dir, "", cfg);
  try {
    const ids = [...c.ids];
    const e = await m.mergedEmbeds([ids], c.pixels);
    const pos = ids.map((_, i) => i + 1);
    return (await m.decode(e, 1, [ids.map(() => 1)], [pos], null, 0)).logits;
  } finally {
    await m.release();
  }
}

Deno.test("lora CLI: an adapter changes the logits, B = 0 does not; same as pre-merged weights", () =>
  withDir(async (dir) => {
    const pairs = plainPairs();
    const cfg = { r: 4, lora_alpha: 2, target_modules: ["q_proj", "down_proj"] };
    const on = await writeAdapter(
      join(dir, "on"),
      cfg,
      Object.values(pairs).flatMap((p) => p.stored),
    );
    const zero = await writeAdapter(
      join(dir, "zero"),
      cfg,
      Object.values(plainPairs(true)).flatMap((p) => p.stored),
    );
    // The same merge done here, written as an HF folder.
    const premerged = join(dir, "premerged");
    await Deno.mkdir(premerged);
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json"]) {
      await Deno.copyFile(join(PG1, f), join(premerged, f));
    }
    const ck = await openCheckpoint(PG1);
    const specs: WritableTensor[] = [];
    for (const [name, ref] of ck.tensors) {
      let v = await values(ref);
      const p = Object.values(pairs).find((p) => p.name === name);
      if (p) v = reference(v, p.b, p.a, 4, 0.5 * 3);
      const f = Float32Array.from(v);
      specs.push({ name, dtype: "F32", shape: ref.shape, data: () => fromFloat32(f, "F32") });
    }
    ck.close();
    await writeSafetensors(join(premerged, "model.safetensors"), specs, { format: "pt" });

    const convert = async (name: string, extra: string[]) => {
      const out = join(dir, `out-${name}`);
      assert.equal(
        await convertCommand.run([name === "premerged" ? premerged : PG1, out, ...extra]),
        0,
      );
      return await logits(out);
    };
    const base = await convert("base", []);
    const withZero = await convert("zero", ["--lora", zero]);
    const withOn = await convert("on", ["--lora", on, "--lora-scale", "3"]);
    const pre = await convert("premerged", []);
    assert.deepEqual(withZero, base, "B = 0 leaves the logits bit-identical");
    assert.ok(relErr(withOn, base) > 1e-2, `the adapter barely moves the logits`);
    assert.ok(
      relErr(withOn, pre) < 1e-5,
      `differs from pre-merged weights: ${relErr(withOn, pre)}`,
    );
  }));
