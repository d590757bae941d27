/**
 * The folders transformers 5.24 wrote (tests/fixtures/models/<model>/hf5: processor_config.json,
 * a 5.x config.json and tokenizer files) through `pg convert`, then `pg caption` / `pg answer`:
 * the converted folder is the one converted from 4.57's hf/ (same configs, same tokenizer ids),
 * and the greedy tokens equal transformers 5's (cases-tf5.json, equal to 4.57's). Logits are
 * checked against 4.57's in tests/convert/fixtures_test.ts.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import { FIX, fixtureCases, withTempDir } from "../generate/fixture_models.ts";
import { runPg } from "../helpers/cli.ts";

interface Tf5Case {
  index: number;
  prompt: string;
  greedy_ids: number[];
}

const readJson = (path: string) => JSON.parse(Deno.readTextFileSync(path));

for (const model of ["pg1-tiny", "pg2-tiny"]) {
  Deno.test(`transformers 5 folder ${model}/hf5: pg convert, then caption/answer give its greedy ids`, () =>
    withTempDir(async (dir) => {
      const out5 = join(dir, "from-hf5");
      const out4 = join(dir, "from-hf");
      for (const [src, dst] of [[join(FIX, model, "hf5"), out5], [join(FIX, model, "hf"), out4]]) {
        const r = await runPg(["convert", src, dst]);
        assert.equal(r.code, 0, r.stderr);
      }
      // Same configs as from 4.57's folder (the 5.x processor_config.json read, not defaults).
      for (const f of ["config.json", "preprocessor_config.json", "generation_config.json"]) {
        assert.deepEqual(readJson(join(out5, f)), readJson(join(out4, f)), f);
      }
      const pre = readJson(join(out5, "preprocessor_config.json"));
      assert.equal(pre.image_seq_length, 16);
      // The 5.x tokenizer files are copied; they give 4.57's prompt ids.
      const tok = await loadTokenizer(out5);
      assert.equal(tok.kind, "huggingface");
      const cases = await fixtureCases(model);
      const tf5 = readJson(join(FIX, model, "cases-tf5.json"));
      assert.equal(tf5.transformers.split(".")[0], "5");
      const byPrompt = new Map<string, Tf5Case>(
        (tf5.cases as Tf5Case[]).map((c) => [c.prompt, c]),
      );
      for (const c of cases) {
        const ids = [...c.ids].filter((id) => id !== tok.imageId);
        assert.deepEqual(ids, [tok.bosId, ...tok.encode(c.prompt), tok.tokenToId("\n")!]);
      }
      const caption = byPrompt.get("caption en")!;
      const answer = byPrompt.get("answer en what is on the table?")!;
      const runs: [string[], Tf5Case][] = [
        [["caption", cases[caption.index].image], caption],
        [["answer", cases[answer.index].image, "what is on the table?"], answer],
      ];
      for (const [args, want] of runs) {
        const r = await runPg([...args, "--model", out5, "--json", "--max-tokens", "24"]);
        assert.equal(r.code, 0, r.stderr);
        const o = JSON.parse(r.stdout);
        assert.equal(o.prompt, want.prompt);
        assert.deepEqual(o.tokens, want.greedy_ids, `${model} ${want.prompt}`);
        console.log(`  ${model} ${want.prompt}: ${o.tokens.length} tokens equal transformers 5's`);
      }
    }));
}
