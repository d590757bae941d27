/**
 * Quantisation variants on the fixture models (a script, not a test): converts PG1-tiny and
 * PG2-tiny with each q8 / q4 variant and prints the max relative logit error and top-1 agreement
 * against fp32 over every prompt position of the fixture cases (the numbers in BENCHMARKS.md).
 *
 *   deno run -A tests/bench/onnx_quant.ts [substring of the variant names to run]
 * @module
 */

import { join } from "node:path";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { openSafetensors } from "../../lib/checkpoint/safetensors.ts";
import { convertModel, PRECISION_SUFFIX } from "../../lib/convert/convert.ts";
import type { LayerStorage, Precision, QuantOptions } from "../../lib/convert/layers.ts";
import type { QuantScheme } from "../../lib/convert/quantize.ts";
import { argmaxRows, OnnxModel, relErr } from "../convert/onnx_runner.ts";

const FIX = new URL("../fixtures/models/", import.meta.url).pathname;

interface Variant {
  name: string;
  precision: Precision;
  quant: Partial<QuantOptions>;
}

/** A block scheme: `bits`, blocks of `blockSize`, zero points when `asymmetric`. */
const scheme = (bits: 4 | 8, blockSize = 32, asymmetric = bits === 4): QuantScheme => ({
  bits,
  blockSize,
  asymmetric,
});

/** Every group at the same storage (the pre-2026-11-26 layout: one scheme for all layers). */
const uniform = (s: LayerStorage): Partial<QuantOptions> => ({ vision: s, attention: s, mlp: s });

/** One decoder / vision matrix kind at 4 or 8 bits, everything else float32 (sensitivity). */
function alone(bits: 4 | 8): Variant[] {
  const kinds = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "fc1",
    "fc2",
    "out_proj",
    "multi_modal_projector",
  ];
  return kinds.map((k) => ({
    name: `only ${k} at ${bits} bits (block 32), other layers fp32`,
    precision: bits === 8 ? "q8" : "q4",
    quant: { ...uniform("fp32"), overrides: [[new RegExp(k), scheme(bits)]], mlpInputScale: [] },
  }));
}

const q4Mlp = (o: Partial<QuantOptions>): Variant["quant"] => ({
  vision: "fp16",
  attention: scheme(8, 16),
  ...o,
});

const VARIANTS: Variant[] = [
  { name: "fp16", precision: "fp16", quant: {} },
  { name: "q8 shipped", precision: "q8", quant: {} },
  { name: "q4 shipped", precision: "q4", quant: {} },
  { name: "q8 all 8-bit block 32 (before)", precision: "q8", quant: uniform(scheme(8)) },
  {
    name: "q8 vision fp32, rest 8-bit block 32",
    precision: "q8",
    quant: { vision: "fp32", attention: scheme(8), mlp: scheme(8) },
  },
  {
    name: "q8 vision fp16, rest 8-bit block 32",
    precision: "q8",
    quant: { vision: "fp16", attention: scheme(8), mlp: scheme(8) },
  },
  {
    name: "q8 vision fp16, rest 8-bit block 16",
    precision: "q8",
    quant: { vision: "fp16", attention: scheme(8, 16), mlp: scheme(8, 16) },
  },
  {
    name: "q8 vision 8-bit block 32, rest shipped",
    precision: "q8",
    quant: { vision: scheme(8) },
  },
  {
    name: "q8 DynamicQuantizeMatMul, rest shipped",
    precision: "q8",
    quant: { matmul: "dq8" },
  },
  {
    name: "q4 all 4-bit zp block 32, table 8-bit (before)",
    precision: "q4",
    quant: { ...uniform(scheme(4)), mlpInputScale: [] },
  },
  {
    name: "q4 vision 4-bit zp block 32, rest shipped",
    precision: "q4",
    quant: { vision: scheme(4) },
  },
  {
    name: "q4 attention 4-bit zp block 32, rest shipped",
    precision: "q4",
    quant: { attention: scheme(4) },
  },
  {
    name: "q4 attention 8-bit block 32, rest shipped",
    precision: "q4",
    quant: { attention: scheme(8) },
  },
  {
    name: "q4 MLP 4-bit symmetric block 32, rest shipped",
    precision: "q4",
    quant: q4Mlp({ mlp: scheme(4, 32, false) }),
  },
  {
    name: "q4 MLP 4-bit zp block 16, rest shipped",
    precision: "q4",
    quant: q4Mlp({ mlp: scheme(4, 16) }),
  },
  {
    name: "q4 MLP 4-bit zp block 16, table block 16, rest shipped",
    precision: "q4",
    quant: q4Mlp({ mlp: scheme(4, 16), table: scheme(8, 16) }),
  },
  {
    name: "q4 gate/up 4-bit zp block 32, down 8-bit, rest shipped",
    precision: "q4",
    quant: q4Mlp({ overrides: [[/down_proj/, scheme(8)]] }),
  },
  {
    name: "q4 down 4-bit zp block 32, gate/up 8-bit, rest shipped",
    precision: "q4",
    quant: q4Mlp({ overrides: [[/gate_proj|up_proj/, scheme(8)]] }),
  },
  {
    name: "q4 gate/up 4-bit zp block 16, down 8-bit, rest shipped",
    precision: "q4",
    quant: q4Mlp({ mlp: scheme(4, 16), overrides: [[/down_proj/, scheme(8)]] }),
  },
  {
    name: "q4 table 4-bit zp block 32, rest shipped",
    precision: "q4",
    quant: { table: scheme(4) },
  },
  {
    name: "q4 table 4-bit symmetric block 32, rest shipped",
    precision: "q4",
    quant: { table: scheme(4, 32, false) },
  },
  ...[[], [0.25], [0.5], [0.75], [1]].flatMap((a): Variant[] => {
    const label = a.length === 0 ? "off" : `α in {0, ${a[0]}}`;
    return [
      { name: `q8 MLP input scaling ${label}`, precision: "q8", quant: { mlpInputScale: a } },
      { name: `q4 MLP input scaling ${label}`, precision: "q4", quant: { mlpInputScale: a } },
    ];
  }),
  ...alone(8),
  ...alone(4),
];

for (const model of ["pg1-tiny", "pg2-tiny"]) {
  const ck = await openCheckpoint(join(FIX, model, "hf"));
  const ex = await openSafetensors(join(FIX, model, "expected.safetensors"));
  const ints = async (n: string) => {
    const b = (await ex.get(n)!.read()).slice();
    return Array.from(new BigInt64Array(b.buffer), Number);
  };
  const cases: { ids: number[]; pos: number[]; mask: number[]; pixels: Float32Array }[] = [];
  for (let i = 0; ex.get(`case${i}.logits`); i++) {
    const r = ex.get(`case${i}.pixel_values`)!;
    cases.push({
      ids: await ints(`case${i}.input_ids`),
      pos: await ints(`case${i}.position_ids`),
      mask: await ints(`case${i}.attention_mask`),
      pixels: toFloat32(await r.read(), r.dtype),
    });
  }
  const dir = await Deno.makeTempDir({ prefix: "pg-quant-" });
  const run = async (p: Precision, quant?: Partial<QuantOptions>) => {
    await convertModel(ck, dir, { precision: p, quant });
    const m = await OnnxModel.load(dir, PRECISION_SUFFIX[p], ck.config);
    const out = [];
    for (const c of cases) {
      const e = await m.mergedEmbeds([c.ids], c.pixels);
      out.push((await m.decode(e, 1, [c.mask], [c.pos], null, 0)).logits);
    }
    await m.release();
    return out;
  };
  const v = ck.config.text.vocabSize;
  const base = await run("fp32");
  const all = VARIANTS;
  const only = Deno.args[0];
  for (const vr of all.filter((x) => !only || x.name.includes(only))) {
    const got = await run(vr.precision, vr.quant);
    let err = 0;
    let agree = 0;
    let total = 0;
    got.forEach((g, i) => {
      err = Math.max(err, relErr(g, base[i]));
      const a = argmaxRows(g, v);
      const b = argmaxRows(base[i], v);
      agree += a.filter((x, j) => x === b[j]).length;
      total += a.length;
    });
    console.log(
      `| ${model} | ${vr.name} | ${(err * 100).toFixed(2)}% | ${
        (agree / total * 100).toFixed(1)
      }% |`,
    );
  }
  await Deno.remove(dir, { recursive: true });
  ck.close();
  ex.close();
}
