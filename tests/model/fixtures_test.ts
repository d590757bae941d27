/**
 * The reference tiny models (tests/fixtures/models/pg{1,2}-tiny, made by
 * tests/reference/make_models.py with transformers): the big_vision .npz and the HF folder of
 * each must give the same canonical tensors and the same config, apart from what shapes cannot
 * tell (HF's extra `<image>` embedding row and the HF-only config values).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import type { PaliGemmaConfig } from "../../lib/model/config.ts";

const root = fileURLToPath(new URL("../fixtures/models/", import.meta.url));

/** Fields HF's config.json sets but big_vision shapes cannot show. */
function shapeFields(c: PaliGemmaConfig) {
  const {
    vocabSize: _v,
    attnLogitSoftcap: _a,
    finalLogitSoftcap: _f,
    queryPreAttnScalar: _q,
    ...text
  } = c.text;
  const { eosTokenIds: _e, ...rest } = c;
  return { ...rest, text };
}

for (const name of ["pg1-tiny", "pg2-tiny"]) {
  const dir = `${root}${name}`;
  Deno.test({
    name: `fixture ${name}: bv.npz and hf/ give the same canonical tensors and config`,
    fn: async () => {
      const bv = await openCheckpoint(`${dir}/bv.npz`);
      const hf = await openCheckpoint(`${dir}/hf`);
      try {
        assert.deepEqual(shapeFields(bv.config), shapeFields(hf.config));
        assert.equal(hf.config.text.vocabSize, bv.config.text.vocabSize + 1, "HF adds <image>");
        assert.equal(bv.config.imageTokenIndex, hf.config.imageTokenIndex);
        assert.deepEqual([...bv.tensors.keys()].sort(), [...hf.tensors.keys()].sort());
        for (const [key, a] of bv.tensors) {
          const b = hf.tensors.get(key)!;
          assert.equal(a.dtype, b.dtype, key);
          if (key.endsWith("embed_tokens.weight")) {
            assert.deepEqual(a.shape, [b.shape[0] - 1, b.shape[1]], key);
            assert.deepEqual(await a.read(), await b.read(0, a.byteLength), key);
          } else {
            assert.deepEqual(a.shape, b.shape, key);
            assert.deepEqual(await a.read(), await b.read(), key);
          }
        }
      } finally {
        bv.close();
        hf.close();
      }
    },
  });
}

Deno.test({
  name: "fixture pg1-tiny: bv-bf16.npz holds the f32 weights rounded to bf16",
  fn: async () => {
    const f32 = await openCheckpoint(`${root}pg1-tiny/bv.npz`);
    const b16 = await openCheckpoint(`${root}pg1-tiny/bv-bf16.npz`);
    try {
      assert.deepEqual(b16.config, f32.config);
      for (const [key, a] of f32.tensors) {
        const b = b16.tensors.get(key)!;
        assert.equal(b.dtype, "BF16", key);
        const x = toFloat32(await a.read(), a.dtype);
        const y = toFloat32(await b.read(), b.dtype);
        // round to nearest bf16: within half an ulp, 2^-8 relative
        for (let i = 0; i < x.length; i++) {
          if (Math.abs(x[i] - y[i]) > Math.abs(x[i]) * 2 ** -8) {
            assert.fail(`${key}[${i}]: bf16 ${y[i]} vs f32 ${x[i]}`);
          }
        }
      }
    } finally {
      f32.close();
      b16.close();
    }
  },
});
