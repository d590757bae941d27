/**
 * The two tokenizer loaders held to their references on the committed fixture corpus
 * (tests/fixtures/tokenizer/: ids from `sentencepiece` for the .model and from HF `tokenizers` for
 * the .json), plus the real Gemma 3 tokenizer.json and the loader's error paths.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { InputError } from "../../lib/errors.ts";
import {
  HuggingFaceTokenizer,
  loadTokenizer,
  locToken,
  segToken,
  SentencePieceTokenizer,
  type Tokenizer,
} from "../../lib/tokenizer/mod.ts";
import {
  ModelType,
  parseSentencePieceModel,
  PieceType,
  serializeSentencePieceModel,
} from "../../lib/tokenizer/sentencepiece_proto.ts";
import { gemma3TokenizerPath } from "./gemma3.ts";

const FIXTURES = new URL("../fixtures/tokenizer/", import.meta.url).pathname;

interface Cases {
  strings: string[];
  sp_ids: number[][];
  hf_ids: number[][];
  disagree: number[];
}

interface Special {
  pad: number;
  eos: number;
  bos: number;
  unk: number;
  image: number;
  loc0000: number;
  seg000: number;
  newline_ids: number[];
  sp_vocab_size: number;
  hf_vocab_size: number;
  byte_fallback_first: number;
}

const cases: Cases = JSON.parse(await Deno.readTextFile(join(FIXTURES, "cases.json")));
const special: Special = JSON.parse(await Deno.readTextFile(join(FIXTURES, "special.json")));
const sp = await loadTokenizer(join(FIXTURES, "tokenizer.model"));
const hf = await loadTokenizer(join(FIXTURES, "tokenizer.json"));

/** Indices of the corpus strings whose ids differ from the reference, with the first few shown. */
function mismatches(tok: Tokenizer, expected: number[][]): string[] {
  const bad: string[] = [];
  cases.strings.forEach((s, i) => {
    const got = tok.encode(s);
    if (JSON.stringify(got) !== JSON.stringify(expected[i])) {
      bad.push(`#${i} ${JSON.stringify(s)}: got ${got}, want ${expected[i]}`);
    }
  });
  return bad;
}

Deno.test("fixture corpus is the expected shape", () => {
  assert.ok(cases.strings.length >= 100, "corpus too small to mean anything");
  assert.equal(cases.sp_ids.length, cases.strings.length);
  assert.equal(cases.hf_ids.length, cases.strings.length);
});

Deno.test(".model loads as SentencePiece and gives sentencepiece's ids on the whole corpus", () => {
  assert.ok(sp instanceof SentencePieceTokenizer);
  assert.equal(sp.kind, "sentencepiece");
  assert.deepEqual(mismatches(sp, cases.sp_ids), []);
});

Deno.test(".json loads as HF and gives HF tokenizers' ids on the whole corpus", () => {
  assert.ok(hf instanceof HuggingFaceTokenizer);
  assert.equal(hf.kind, "huggingface");
  assert.deepEqual(mismatches(hf, cases.hf_ids), []);
});

Deno.test("where the references disagree, each loader follows its own", () => {
  assert.ok(cases.disagree.length > 0, "fixture lists no disagreements");
  for (const i of cases.disagree) {
    const s = cases.strings[i];
    assert.notDeepEqual(cases.sp_ids[i], cases.hf_ids[i], `fixture #${i} does not disagree`);
    assert.deepEqual(sp.encode(s), cases.sp_ids[i], `sentencepiece side of ${JSON.stringify(s)}`);
    assert.deepEqual(hf.encode(s), cases.hf_ids[i], `HF side of ${JSON.stringify(s)}`);
  }
  // Everywhere else the two loaders agree with each other.
  const agreeing = cases.strings.filter((_, i) => !cases.disagree.includes(i));
  for (const s of agreeing) assert.deepEqual(sp.encode(s), hf.encode(s), JSON.stringify(s));
});

Deno.test("decode(encode(s)) === s on the whole corpus for both loaders", () => {
  for (const tok of [sp, hf]) {
    const bad = cases.strings.filter((s) => tok.decode(tok.encode(s)) !== s);
    assert.deepEqual(bad, [], `${tok.kind} round trip`);
  }
});

Deno.test("decoding the reference ids gives back the corpus strings", () => {
  cases.strings.forEach((s, i) => {
    assert.equal(sp.decode(cases.sp_ids[i]), s, `sentencepiece ids of #${i}`);
    assert.equal(hf.decode(cases.hf_ids[i]), s, `HF ids of #${i}`);
  });
});

Deno.test("special ids and vocabulary sizes equal the fixture's", () => {
  for (const tok of [sp, hf]) {
    assert.equal(tok.padId, special.pad, `${tok.kind} pad`);
    assert.equal(tok.eosId, special.eos, `${tok.kind} eos`);
    assert.equal(tok.bosId, special.bos, `${tok.kind} bos`);
    assert.equal(tok.unkId, special.unk, `${tok.kind} unk`);
    assert.equal(tok.imageId, special.image, `${tok.kind} image`);
    assert.equal(tok.locBase, special.loc0000, `${tok.kind} loc0000`);
    assert.equal(tok.segBase, special.seg000, `${tok.kind} seg000`);
    assert.deepEqual(tok.encode("\n"), special.newline_ids, `${tok.kind} newline`);
    assert.equal(tok.tokenToId("<0x00>"), special.byte_fallback_first, `${tok.kind} <0x00>`);
    assert.equal(tok.idToToken(tok.imageId), "<image>");
    assert.equal(tok.tokenToId("<image>"), tok.imageId);
  }
  // The .model has no <image> piece: it takes the id after the last piece, as HF adds it.
  assert.equal(sp.imageId, special.sp_vocab_size);
  assert.equal(sp.vocabSize, special.sp_vocab_size + 1);
  assert.equal(hf.vocabSize, special.hf_vocab_size);
});

Deno.test("every <locNNNN> and <segNNN> is one id, contiguous from its base", () => {
  for (const tok of [sp, hf]) {
    for (let n = 0; n < 1024; n++) {
      assert.equal(tok.tokenToId(locToken(n)), tok.locBase + n);
      assert.equal(tok.idToToken(tok.locBase + n), locToken(n));
    }
    for (let n = 0; n < 128; n++) assert.equal(tok.tokenToId(segToken(n)), tok.segBase + n);
    assert.deepEqual(tok.encode("<loc0123><seg045>"), [tok.locBase + 123, tok.segBase + 45]);
    assert.equal(tok.decode([tok.locBase + 7, tok.segBase + 127]), "<loc0007><seg127>");
  }
});

Deno.test("skipSpecial drops pad/bos/eos/image, keeps loc tokens", () => {
  const a = sp.encode("a");
  for (const tok of [sp, hf]) {
    const ids = [tok.imageId, tok.bosId, ...a, tok.locBase + 1, tok.eosId, tok.padId];
    assert.equal(tok.decode(ids, true), "a<loc0001>", tok.kind);
    assert.equal(tok.decode(ids, false), "<image><bos>a<loc0001><eos><pad>", tok.kind);
  }
});

Deno.test("byte-fallback runs decode as each reference does", () => {
  const bytes = (tok: Tokenizer, ...bs: number[]): number[] =>
    bs.map((b) => tok.tokenToId(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`)!);
  for (const tok of [sp, hf]) {
    // Valid UTF-8 in byte pieces (a BOM included) decodes to the character.
    assert.equal(tok.decode(bytes(tok, 0xf0, 0x9f, 0x99, 0x82)), "🙂", tok.kind);
    assert.equal(tok.decode(bytes(tok, 0xef, 0xbb, 0xbf)), "\uFEFF", tok.kind);
    assert.equal(tok.decode(bytes(tok, 0xe2, 0x82)), "\uFFFD\uFFFD", tok.kind);
  }
  // sentencepiece replaces only the bad bytes; HF tokenizers replaces every byte of a bad run
  // (checked with sentencepiece 0.2 and tokenizers 0.22 on these fixture files).
  assert.equal(sp.decode(bytes(sp, 0x41, 0xc3)), "A\uFFFD");
  assert.equal(hf.decode(bytes(hf, 0x41, 0xc3)), "\uFFFD\uFFFD");
  // <unk> decodes to sentencepiece's unk surface, and to its token text for HF.
  assert.equal(sp.decode([sp.unkId]), " \u2047 ");
  assert.equal(hf.decode([hf.unkId]), "<unk>");
});

Deno.test("ids past the vocabulary decode to nothing (as transformers); negative ids are errors", () => {
  for (const tok of [sp, hf]) {
    const cat = tok.encode("a cat");
    // A padded embedding row (real checkpoints: 257216 rows for 257153 ids) has no token.
    assert.equal(tok.decode([tok.vocabSize]), "", tok.kind);
    assert.equal(tok.decode([tok.vocabSize + 63], true), "", tok.kind);
    assert.equal(tok.decode([...cat, tok.vocabSize + 7]), tok.decode(cat), tok.kind);
    assert.equal(
      tok.decode([cat[0], tok.vocabSize, ...cat.slice(1)]),
      tok.decode(cat),
      tok.kind,
    );
    assert.throws(() => tok.decode([-1]), InputError);
    assert.throws(() => tok.decode([1.5]), InputError);
  }
});

Deno.test("a folder loads tokenizer.json first, else tokenizer.model", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal((await loadTokenizer(FIXTURES)).kind, "huggingface");
    await Deno.copyFile(join(FIXTURES, "tokenizer.model"), join(dir, "tokenizer.model"));
    const onlyModel = await loadTokenizer(dir);
    assert.equal(onlyModel.kind, "sentencepiece");
    assert.deepEqual(onlyModel.encode(cases.strings[0]), cases.sp_ids[0]);
    // A .json without tokenizer_config.json beside it still loads, with the default names.
    await Deno.copyFile(join(FIXTURES, "tokenizer.json"), join(dir, "tokenizer.json"));
    const json = await loadTokenizer(dir);
    assert.equal(json.kind, "huggingface");
    assert.equal(json.bosId, special.bos);
    assert.deepEqual(json.encode(cases.strings[0]), cases.hf_ids[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("missing and corrupt tokenizer files are one-line InputErrors naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const expectInput = async (path: string, pattern: RegExp): Promise<void> => {
      await assert.rejects(() => loadTokenizer(path), (err: unknown) => {
        assert.ok(err instanceof InputError, `not an InputError: ${err}`);
        assert.match(err.message, pattern);
        assert.ok(!err.message.includes("\n"), "message is one line");
        assert.ok(err.message.includes(path), "message names the file");
        return true;
      });
    };
    await expectInput(join(dir, "nope.model"), /no such file/);
    await expectInput(dir, /neither tokenizer.json nor tokenizer.model/);
    const model = await Deno.readFile(join(FIXTURES, "tokenizer.model"));
    const truncated = join(dir, "truncated.model");
    await Deno.writeFile(truncated, model.subarray(0, model.length >> 1));
    await expectInput(truncated, /not a SentencePiece model/);
    const garbage = join(dir, "garbage.model");
    await Deno.writeFile(garbage, new TextEncoder().encode("this is not a protobuf at all\n"));
    await expectInput(garbage, /SentencePiece/);
    const badJson = join(dir, "tokenizer.json");
    await Deno.writeTextFile(badJson, '{"model": {"type": "BPE", "vocab": ');
    await expectInput(badJson, /not valid JSON/);
    await Deno.writeTextFile(badJson, '{"version": "1.0"}');
    await expectInput(badJson, /not a tokenizer.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a re-serialised .model gives the same ids; non-BPE models and missing byte pieces are refused", async () => {
  const path = join(FIXTURES, "tokenizer.model");
  const model = parseSentencePieceModel(await Deno.readFile(path), path);
  const again = SentencePieceTokenizer.fromBytes(serializeSentencePieceModel(model), "copy.model");
  cases.strings.forEach((s, i) => assert.deepEqual(again.encode(s), cases.sp_ids[i]));
  const unigram = { ...model, trainerSpec: { ...model.trainerSpec, modelType: ModelType.unigram } };
  assert.throws(
    () => SentencePieceTokenizer.fromBytes(serializeSentencePieceModel(unigram), "u.model"),
    (err: unknown) => err instanceof InputError && /only BPE.*UNIGRAM/.test(err.message),
  );
  const noBytes = { ...model, pieces: model.pieces.filter((p) => p.piece !== "<0x41>") };
  assert.throws(
    () => SentencePieceTokenizer.fromBytes(serializeSentencePieceModel(noBytes), "b.model"),
    (err: unknown) => err instanceof InputError && /256 <0xNN> pieces/.test(err.message),
  );
});

Deno.test("merge ties go to the leftmost pair; UNUSED pieces are split back (sentencepiece ids)", async () => {
  // The fixture model plus NORMAL pieces "aa" and "▁▁" (score 10), with "caption" and "▁en" made
  // UNUSED. Expected ids from sentencepiece 0.2 on the same modified model.
  const path = join(FIXTURES, "tokenizer.model");
  const base = parseSentencePieceModel(await Deno.readFile(path), path);
  const pieces = base.pieces.map((p) =>
    p.piece === "caption" || p.piece === "\u2581en" ? { ...p, type: PieceType.unused } : p
  );
  pieces.push({ piece: "aa", score: 10, type: PieceType.normal });
  pieces.push({ piece: "\u2581\u2581", score: 10, type: PieceType.normal });
  const tok = SentencePieceTokenizer.fromBytes(
    serializeSentencePieceModel({ ...base, pieces }),
    "modified.model",
  );
  const expected: [string, number[]][] = [
    ["aaa", [2152, 918]],
    ["aaaaa", [2152, 2152, 918]],
    ["b aaa", [929, 914, 2152, 918]],
    ["   ", [2153, 914]],
    ["     x", [2153, 2153, 914, 938]],
    ["caption en", [924, 310, 914, 275]],
    ["a caption", [918, 537]],
  ];
  for (const [text, ids] of expected) {
    assert.deepEqual(tok.encode(text), ids, JSON.stringify(text));
    assert.equal(tok.decode(ids), text);
  }
});

Deno.test("long inputs encode in one pass and round-trip", () => {
  for (const tok of [sp, hf]) {
    for (const s of ["ab ".repeat(30000), "猫🙂 <loc0001>\n".repeat(5000)]) {
      const ids = tok.encode(s);
      assert.ok(ids.length > 0 && ids.length <= s.length * 4, tok.kind);
      assert.equal(tok.decode(ids), s, tok.kind);
    }
  }
});

Deno.test("the real Gemma 3 tokenizer.json (262k vocabulary) loads and encodes as HF does", async () => {
  const gemma = await loadTokenizer(await gemma3TokenizerPath());
  assert.equal(gemma.kind, "huggingface");
  // 262144 pieces + <image_soft_token>, and <image> added after them as PaliGemma's processor does.
  assert.equal(gemma.vocabSize, 262146);
  assert.equal(gemma.imageId, 262145);
  assert.equal(gemma.bosId, 2);
  assert.equal(gemma.padId, 0);
  assert.equal(gemma.eosId, gemma.tokenToId("<end_of_turn>")); // eos_token of its config
  assert.equal(gemma.locBase, -1); // Gemma 3 has no <locNNNN> tokens
  // Reference ids from HF tokenizers 0.22.2 on this same file (add_special_tokens=False).
  const reference: [string, number[]][] = [
    ["caption en\n", [21151, 696, 107]],
    ["Hello world", [9259, 1902]],
    ["answer en what is in the image?", [14433, 696, 1144, 563, 528, 506, 2471, 236881]],
    ["東京タワー 🙂 naïve 12345", [
      31414,
      237312,
      43071,
      57235,
      120362,
      236743,
      236770,
      236778,
      236800,
      236812,
      236810,
    ]],
    ["<start_of_image> <end_of_turn>", [255999, 236743, 106]],
  ];
  for (const [text, ids] of reference) {
    assert.deepEqual(gemma.encode(text), ids, JSON.stringify(text));
    assert.equal(gemma.decode(ids), text);
  }
});
