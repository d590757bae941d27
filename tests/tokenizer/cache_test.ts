/**
 * The tokenizer cache (`tokenizer.pgcache`, lib/tokenizer/cache.ts): a tokenizer loaded from it
 * gives exactly the ids, text, vocabulary and special ids of the one built from its tokenizer.json
 * (the fixture tokenizer on its reference strings, the real 262k Gemma 3 tokenizer on text mixing
 * scripts, digits, emoji, spaces and special tokens, and fresh random strings); a cache of other
 * files (changed size or time) or a corrupt one is ignored; convert-style writing beside the JSON
 * and the user-cache copy for a large tokenizer are used by the next load.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  buildTokenizerCache,
  readTokenizerCache,
  TOKENIZER_CACHE,
} from "../../lib/tokenizer/cache.ts";
import { HuggingFaceTokenizer } from "../../lib/tokenizer/hf.ts";
import {
  loadHuggingFaceTokenizer,
  TOKENIZER_CACHE_DIR,
  writeTokenizerCacheBeside,
} from "../../lib/tokenizer/load.ts";
import { gemma3TokenizerPath } from "./gemma3.ts";

const FIXTURES = new URL("../fixtures/tokenizer/", import.meta.url).pathname;

/** A seeded generator of random strings over a mix of alphabets and special tokens. */
function randomStrings(seed: number, count: number): string[] {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const pieces = [
    "a",
    "the",
    " ",
    "  ",
    "\n",
    "\t",
    "cat",
    "Dog",
    "0",
    "12",
    "345",
    "é",
    "ß",
    "日本",
    "語",
    "😀",
    "👍🏽",
    "<image>",
    "<bos>",
    "<loc0012>",
    "<seg017>",
    "▁",
    "caption en",
    "ü",
    "Ω",
    "\u0000",
    "x".repeat(40),
    "ab ab",
    ".",
    ",",
    "!?",
    "\ud800",
  ];
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(next() * 12);
    let t = "";
    for (let j = 0; j < n; j++) t += pieces[Math.floor(next() * pieces.length)];
    out.push(t);
  }
  return out;
}

function assertSame(
  a: HuggingFaceTokenizer,
  b: HuggingFaceTokenizer,
  texts: string[],
  seed: number,
) {
  for (
    const k of [
      "vocabSize",
      "padId",
      "eosId",
      "bosId",
      "unkId",
      "imageId",
      "locBase",
      "segBase",
    ] as const
  ) {
    assert.equal(b[k], a[k], k);
  }
  for (const t of texts) {
    const ids = a.encode(t);
    assert.deepEqual(b.encode(t), ids, `encode ${JSON.stringify(t)} (seed ${seed})`);
    assert.equal(b.decode(ids), a.decode(ids), `decode ${JSON.stringify(t)} (seed ${seed})`);
    assert.equal(b.decode(ids, true), a.decode(ids, true));
  }
  for (let id = 0; id < a.vocabSize; id += Math.max(1, a.vocabSize >> 12)) {
    const tok = a.idToToken(id);
    assert.equal(b.idToToken(id), tok, `id ${id}`);
    if (tok !== undefined) assert.equal(b.tokenToId(tok), a.tokenToId(tok), `token ${tok}`);
  }
}

async function fromCache(
  path: string,
): Promise<{ a: HuggingFaceTokenizer; b: HuggingFaceTokenizer }> {
  const json = JSON.parse(await Deno.readTextFile(path));
  const config = JSON.parse(await Deno.readTextFile(join(path, "..", "tokenizer_config.json")));
  const source = { json: [1, 2], config: [3, 4] } as const;
  const bytes = buildTokenizerCache(json, config, source);
  assert.ok(bytes !== null, "a BPE tokenizer.json gets a cache");
  const hit = readTokenizerCache(bytes, source);
  assert.ok(hit !== null);
  return {
    a: new HuggingFaceTokenizer(json, config, path),
    b: new HuggingFaceTokenizer(hit.json, hit.config, path, hit.tok),
  };
}

Deno.test("tokenizer cache: the fixture tokenizer gives the same ids and text as its JSON", async () => {
  const path = join(FIXTURES, "tokenizer.json");
  const { a, b } = await fromCache(path);
  const cases = JSON.parse(await Deno.readTextFile(join(FIXTURES, "cases.json")));
  const seed = Date.now() % 100000;
  const texts = [...cases.strings as string[], ...randomStrings(seed, 300)];
  // The fixture's reference ids (HF transformers) still hold.
  (cases.strings as string[]).forEach((t, i) => assert.deepEqual(b.encode(t), cases.hf_ids[i], t));
  assertSame(a, b, texts, seed);
});

Deno.test("tokenizer cache: the 262k Gemma 3 tokenizer gives the same ids and text as its JSON", async () => {
  const { a, b } = await fromCache(await gemma3TokenizerPath());
  const seed = Date.now() % 100000;
  const texts = [
    "caption en\n",
    "answer en What is in the image?\n",
    "detect cat ; dog\n",
    "segment the person on the left\n",
    "<loc0001><loc0200><loc0300><loc1023> cat ; <seg012><seg127>",
    "Ünïcödé – “quotes” — 数字 123456789 ١٢٣ 😀🙃 \t tabs\n\nnewlines   spaces",
    ...randomStrings(seed, 200),
  ];
  assertSame(a, b, texts, seed);
});

Deno.test("tokenizer cache: a cache of other files or a corrupt one is ignored", async () => {
  const json = JSON.parse(await Deno.readTextFile(join(FIXTURES, "tokenizer.json")));
  const bytes = buildTokenizerCache(json, {}, { json: [10, 20], config: null });
  assert.ok(bytes !== null);
  assert.equal(readTokenizerCache(bytes, { json: [10, 21], config: null }), null, "other mtime");
  assert.equal(readTokenizerCache(bytes, { json: [11, 20], config: null }), null, "other size");
  assert.equal(readTokenizerCache(bytes, { json: [10, 20], config: [1, 1] }), null, "config added");
  assert.equal(
    readTokenizerCache(bytes.subarray(0, bytes.length - 9), { json: [10, 20], config: null }),
    null,
  );
  assert.equal(readTokenizerCache(new Uint8Array(3), { json: [10, 20], config: null }), null);
  const unigram = { ...json, model: { type: "Unigram", vocab: [] } };
  assert.equal(buildTokenizerCache(unigram, {}, { json: [1, 1], config: null }), null);
});

Deno.test("tokenizer cache: written beside by convert, in the user cache for a large tokenizer", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pg-tokcache-" });
  const saved = Deno.env.get("PG_CACHE");
  try {
    Deno.env.set("PG_CACHE", join(dir, "cache"));
    const model = join(dir, "model");
    await Deno.mkdir(model);
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) {
      await Deno.copyFile(join(FIXTURES, f), join(model, f));
    }
    const path = join(model, "tokenizer.json");
    const plain = await loadHuggingFaceTokenizer(path);
    assert.ok(await writeTokenizerCacheBeside(path));
    const cachePath = join(model, TOKENIZER_CACHE);
    const fromCacheFile = await loadHuggingFaceTokenizer(path);
    assertSame(plain, fromCacheFile, ["caption en\n", "<loc0001> cat"], 0);
    // A corrupt cache beside the JSON is ignored.
    await Deno.writeFile(cachePath, new Uint8Array([1, 2, 3]));
    assertSame(plain, await loadHuggingFaceTokenizer(path), ["caption en\n"], 0);
    // A stale cache (the JSON changed since) is ignored.
    assert.ok(await writeTokenizerCacheBeside(path));
    const text = await Deno.readTextFile(path);
    await Deno.writeTextFile(path, text + " ");
    assertSame(plain, await loadHuggingFaceTokenizer(path), ["caption en\n"], 0);
    // The fixture is small: no user-cache copy.
    let entries: string[] = [];
    try {
      entries = [...Deno.readDirSync(join(dir, "cache", TOKENIZER_CACHE_DIR))].map((e) => e.name);
    } catch { /* none */ }
    assert.deepEqual(entries, []);
    // The large Gemma 3 tokenizer, without a cache beside it: the first load writes the user
    // cache, the next one reads it and gives the same tokenizer.
    const big = join(dir, "big");
    await Deno.mkdir(big);
    const g = await gemma3TokenizerPath();
    await Deno.copyFile(g, join(big, "tokenizer.json"));
    await Deno.copyFile(join(g, "..", "tokenizer_config.json"), join(big, "tokenizer_config.json"));
    const first = await loadHuggingFaceTokenizer(join(big, "tokenizer.json"));
    entries = [...Deno.readDirSync(join(dir, "cache", TOKENIZER_CACHE_DIR))].map((e) => e.name);
    assert.equal(entries.length, 1);
    assert.match(entries[0], /^[0-9a-f]{24}\.pgcache$/);
    const t = performance.now();
    const second = await loadHuggingFaceTokenizer(join(big, "tokenizer.json"));
    const ms = performance.now() - t;
    assertSame(first, second, ["caption en\n", "détecte 猫 ; 🐶"], 0);
    console.log(`262k tokenizer from the user cache: ${ms.toFixed(0)} ms`);
  } finally {
    if (saved === undefined) Deno.env.delete("PG_CACHE");
    else Deno.env.set("PG_CACHE", saved);
    await Deno.remove(dir, { recursive: true });
  }
});
