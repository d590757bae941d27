/**
 * An embedding table padded past the tokenizer (tests/fixtures/models/pg1-tiny-padded: 2217 rows,
 * 2153 tokenizer ids, as real checkpoints have 257216 rows for 257153 ids), whose greedy run picks
 * a padded row: `pg convert`, then `pg caption` / `pg answer --json` give transformers' ids,
 * the out-of-tokenizer id included, and transformers' text (such ids decode to nothing); the
 * last-position logits match transformers 4.57's.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { toFloat32 } from "../../lib/checkpoint/dtype.ts";
import { openSafetensors } from "../../lib/checkpoint/safetensors.ts";
import { convertModel } from "../../lib/convert/convert.ts";
import { FIX, fixtureCases, FIXTURES, withTempDir } from "../generate/fixture_models.ts";
import { runPg } from "../helpers/cli.ts";
import { OnnxModel, relErr } from "./onnx_runner.ts";

interface PaddedCase {
  index: number;
  image: string;
  prompt: string;
  generate_ids: number[];
  outside_tokenizer_steps: number[];
  text: string;
}

const DIR = join(FIX, "pg1-tiny-padded");
const info = JSON.parse(Deno.readTextFileSync(join(DIR, "cases.json")));
const cases = info.cases as PaddedCase[];

Deno.test("padded vocabulary: pg convert, then caption/answer --json give transformers' ids and text", () =>
  withTempDir(async (dir) => {
    const out = join(dir, "padded");
    const conv = await runPg(["convert", join(DIR, "hf"), out]);
    assert.equal(conv.code, 0, conv.stderr);
    assert.equal(
      JSON.parse(Deno.readTextFileSync(join(out, "config.json"))).text_config.vocab_size,
      2217,
    );
    const caption = cases.find((c) => c.prompt === "caption en")!;
    const answer = cases.find((c) => c.prompt === "answer en what is on the table?")!;
    // The caption case is where transformers picks padded row 2160 (>= the tokenizer's 2153 ids).
    assert.ok(caption.outside_tokenizer_steps.length > 0);
    assert.ok(caption.generate_ids.some((id) => id >= info.tokenizer_size));
    const runs: [string[], PaddedCase][] = [
      [["caption", join(FIXTURES, caption.image)], caption],
      [["answer", join(FIXTURES, answer.image), "what is on the table?"], answer],
    ];
    for (const [args, want] of runs) {
      const r = await runPg([...args, "--model", out, "--json", "--max-tokens", "24"]);
      assert.equal(r.code, 0, r.stderr);
      const o = JSON.parse(r.stdout);
      assert.equal(o.prompt, want.prompt);
      assert.deepEqual(o.tokens, want.generate_ids, want.prompt);
      assert.equal(o.text, want.text, want.prompt);
    }
    // Plain output too: the text alone, the padded row adding nothing.
    const plain = await runPg([
      "caption",
      join(FIXTURES, caption.image),
      "--model",
      out,
      "--max-tokens",
      "24",
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.ok(plain.stdout.includes(caption.text), plain.stdout);
  }));

Deno.test("padded vocabulary: last-position logits of every case match transformers'", async () => {
  const ck = await openCheckpoint(join(DIR, "hf"));
  const ex = await openSafetensors(join(DIR, "expected.safetensors"));
  try {
    assert.equal(ck.config.text.vocabSize, 2217);
    await withTempDir(async (dir) => {
      await convertModel(ck, dir, { precision: "fp32" });
      const m = await OnnxModel.load(dir, "", ck.config);
      try {
        const base = await fixtureCases("pg1-tiny"); // the same inputs (cases.json: "inputs")
        let worst = 0;
        for (const c of cases) {
          const b = base[c.index];
          const ids = [...b.ids];
          const n = ids.length;
          const e = await m.mergedEmbeds([ids], b.pixels);
          const pos = Array.from({ length: n }, (_, i) => i + 1);
          const r = await m.decode(e, 1, [new Array(n).fill(1)], [pos], null, 1);
          const ref = ex.get(`case${c.index}.last_logits`)!;
          worst = Math.max(worst, relErr(r.logits, toFloat32(await ref.read(), ref.dtype)));
        }
        console.log(`  last-position logits rel err ${worst.toExponential(2)}`);
        assert.ok(worst < 1e-4, `logits rel err ${worst}`);
      } finally {
        await m.release();
      }
    });
  } finally {
    ex.close();
    ck.close();
  }
});
