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
import type { Precision, QuantOptions } from "../../lib/convert/layers.ts";
import type { QuantScheme } from "../../lib/convert/quantize.ts";
import { argmaxRows, OnnxModel, relErr } from "../convert/onnx_runner.ts";

const FIX = new URL("../fixtures/models/", import.meta.url).pathname;

interface Variant {
  name: string;
  precision: Precision;
  quant: Partial<QuantOptions>;
}

const scheme = (bits: 4 | 8, o: Partial<QuantScheme> = {}): QuantScheme => ({
  bits,
  blockSize: 32,
  asymmetric: false,
  search: false,
  ...o,
});

function variants(bits: 4 | 8): Variant[] {
  const p: Precision = bits === 8 ? "q8" : "q4";
  const out: Variant[] = [];
  for (const acc of [4, 0]) {
    for (const table of bits === 4 ? [4, 8] as const : [8] as const) {
      for (
        const [label, o] of [
          ["sym max", {}],
          ["sym search", { search: true }],
          ["asym minmax", { asymmetric: true }],
          ["asym search", { asymmetric: true, search: true }],
        ] as const
      ) {
        out.push({
          name: `${p} ${label}, table ${table} bit, acc ${acc}`,
          precision: p,
          quant: {
            body: scheme(bits, o),
            table: scheme(table, o),
            accuracyLevel: acc,
          },
        });
      }
    }
  }
  for (const block of [16, 64]) {
    out.push({
      name: `${p} sym search, block ${block}, table 8 bit, acc 4`,
      precision: p,
      quant: {
        body: scheme(bits, { search: true, blockSize: block }),
        table: scheme(8, { search: true, blockSize: block }),
        accuracyLevel: 4,
      },
    });
  }
  return out;
}

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
  const all: Variant[] = [
    { name: "fp16", precision: "fp16", quant: {} },
    { name: "q8 shipped default", precision: "q8", quant: {} },
    { name: "q4 shipped default", precision: "q4", quant: {} },
    { name: "q8 DynamicQuantizeMatMul, table 8 bit", precision: "q8", quant: { matmul: "dq8" } },
    ...variants(8),
    ...variants(4),
  ];
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
