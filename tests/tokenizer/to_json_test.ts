/**
 * `tokenizer.model` → `tokenizer.json` + `tokenizer_config.json`, held to the files transformers
 * 4.57.6 wrote from the same model (tests/fixtures/tokenizer/): field-by-field equality, the same
 * ids as HF `tokenizers` on the whole corpus through our `.json` loader and through
 * transformers.js, and the post-processor / error paths the fixture does not cover.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { AutoTokenizer, env } from "@huggingface/transformers";
import { InputError } from "../../lib/errors.ts";
import { loadTokenizer } from "../../lib/tokenizer/load.ts";
import {
  ModelType,
  parseSentencePieceModel,
  serializeSentencePieceModel,
} from "../../lib/tokenizer/sentencepiece_proto.ts";
import {
  sentencePieceFileToHf,
  sentencePieceToHf,
  writeHfTokenizer,
} from "../../lib/tokenizer/to_json.ts";

const FIXTURES = new URL("../fixtures/tokenizer/", import.meta.url).pathname;
const MODEL = join(FIXTURES, "tokenizer.model");

const readJson = async (p: string) => JSON.parse(await Deno.readTextFile(p));
const cases: { strings: string[]; hf_ids: number[][] } = await readJson(
  join(FIXTURES, "cases.json"),
);
const refJson = await readJson(join(FIXTURES, "tokenizer.json"));
const refConfig = await readJson(join(FIXTURES, "tokenizer_config.json"));

/** Our files as a reader of them sees them (JSON round trip). */
async function ours() {
  const files = await sentencePieceFileToHf(MODEL);
  return {
    tokenizer: JSON.parse(JSON.stringify(files.tokenizer)),
    config: JSON.parse(JSON.stringify(files.config)),
    files,
  };
}

Deno.test("tokenizer.model → tokenizer.json: fields equal transformers' output", async () => {
  const { tokenizer, config } = await ours();
  assert.deepEqual(Object.keys(tokenizer), Object.keys(refJson));
  for (const key of Object.keys(refJson)) {
    if (key === "model") continue;
    assert.deepEqual(tokenizer[key], refJson[key], key);
  }
  for (const key of Object.keys(refJson.model)) {
    if (key === "vocab" || key === "merges") continue;
    assert.deepEqual(tokenizer.model[key], refJson.model[key], `model.${key}`);
  }
  // Vocabulary with ids (and key order, which is id order), merges in rank order.
  assert.deepEqual(Object.entries(tokenizer.model.vocab), Object.entries(refJson.model.vocab));
  assert.equal(tokenizer.model.merges.length, refJson.model.merges.length);
  assert.ok(tokenizer.model.merges.length > 100, "the fixture has merges to compare");
  tokenizer.model.merges.forEach((m: string[], i: number) =>
    assert.deepEqual(m, refJson.model.merges[i], `merge #${i}`)
  );
  assert.deepEqual(config, refConfig);
});

Deno.test("tokenizer.json from tokenizer.model: HF's ids on the corpus, specials", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pg-tojson-" });
  try {
    const { files } = await ours();
    const tok = join(dir, "tok");
    await Deno.mkdir(tok);
    await writeHfTokenizer(files, tok);
    assert.deepEqual([...Deno.readDirSync(tok)].map((e) => e.name).sort(), [
      "tokenizer.json",
      "tokenizer_config.json",
    ]);
    const mine = await loadTokenizer(join(tok, "tokenizer.json"));
    const ref = await loadTokenizer(join(FIXTURES, "tokenizer.json"));
    assert.equal(mine.kind, "huggingface");
    const bad: string[] = [];
    cases.strings.forEach((s, i) => {
      const got = mine.encode(s);
      if (JSON.stringify(got) !== JSON.stringify(cases.hf_ids[i])) bad.push(`#${i} ${s}: ${got}`);
    });
    assert.deepEqual(bad, [], `${bad.length}/${cases.strings.length} differ`);
    for (
      const k of ["vocabSize", "padId", "eosId", "bosId", "unkId", "imageId", "locBase"] as const
    ) {
      assert.equal(mine[k], ref[k], k);
    }
    assert.equal(mine.segBase, ref.segBase);
    const ids = cases.hf_ids.flat().slice(0, 400);
    assert.equal(mine.decode(ids, true), ref.decode(ids, true));

    // transformers.js reads the same two files and gives the same ids.
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = dir;
    const tjs = await AutoTokenizer.from_pretrained("tok", { local_files_only: true });
    const tjsBad = cases.strings.filter((s, i) =>
      JSON.stringify(tjs.encode(s, { add_special_tokens: false })) !==
        JSON.stringify(cases.hf_ids[i])
    );
    assert.deepEqual(tjsBad, []);
    assert.equal(tjs.pad_token_id, mine.padId);
    assert.equal(tjs.eos_token_id, mine.eosId);
    assert.equal(tjs.bos_token_id, mine.bosId);
    assert.deepEqual(tjs.convert_tokens_to_ids(["<image>"]), [mine.imageId]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer.model → tokenizer.json: <bos>/<eos> template, non-BPE refused", async () => {
  const model = parseSentencePieceModel(await Deno.readFile(MODEL), MODEL);
  const files = sentencePieceToHf(model, MODEL, { addBos: true, addEos: true });
  const pp = files.tokenizer.post_processor as Record<string, unknown>;
  assert.deepEqual(pp.single, [
    { SpecialToken: { id: "<bos>", type_id: 0 } },
    { Sequence: { id: "A", type_id: 0 } },
    { SpecialToken: { id: "<eos>", type_id: 0 } },
  ]);
  assert.deepEqual(pp.special_tokens, {
    "<bos>": { id: "<bos>", ids: [2], tokens: ["<bos>"] },
    "<eos>": { id: "<eos>", ids: [1], tokens: ["<eos>"] },
  });
  assert.equal(files.config.add_bos_token, true);

  const unigram = { ...model, trainerSpec: { ...model.trainerSpec, modelType: ModelType.unigram } };
  const dir = await Deno.makeTempDir({ prefix: "pg-tojson-" });
  try {
    const path = join(dir, "uni.model");
    await Deno.writeFile(path, serializeSentencePieceModel(unigram));
    await assert.rejects(sentencePieceFileToHf(path), (e: Error) => {
      assert.ok(e instanceof InputError);
      assert.match(e.message, /uni\.model: only SentencePiece BPE/);
      return true;
    });
    await Deno.writeTextFile(join(dir, "junk.model"), "not a model");
    await assert.rejects(sentencePieceFileToHf(join(dir, "junk.model")), InputError);
    await assert.rejects(sentencePieceFileToHf(join(dir, "missing.model")), InputError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
