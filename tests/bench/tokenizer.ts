/**
 * Tokenizer benchmark: load time and encode throughput (tokens/s, chars/s) of both loaders, on the
 * fixture tokenizers (2.5k vocabulary), the real Gemma 3 tokenizer.json (262k) and a
 * `tokenizer.model` built from that same 262k vocabulary (scores = -id, as SentencePiece BPE
 * orders merges), so that the SentencePiece loader is timed at full size too.
 *
 * Run: deno run --allow-read --allow-write --allow-env tests/bench/tokenizer.ts
 * @module
 */

import { join } from "node:path";
import { loadTokenizer, type Tokenizer } from "../../lib/tokenizer/mod.ts";
import {
  ModelType,
  PieceType,
  type SentencePiece,
  serializeSentencePieceModel,
} from "../../lib/tokenizer/sentencepiece_proto.ts";
import { gemma3TokenizerPath } from "../tokenizer/gemma3.ts";

const FIXTURES = new URL("../fixtures/tokenizer/", import.meta.url).pathname;

interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

/** Writes a BPE tokenizer.model holding the vocabulary of a tokenizer.json; returns its path. */
async function modelFromJson(jsonPath: string, dir: string): Promise<string> {
  const json = JSON.parse(await Deno.readTextFile(jsonPath));
  const vocab = json.model.vocab as Record<string, number>;
  const added = new Map<number, AddedToken>();
  for (const t of json.added_tokens as AddedToken[]) added.set(t.id, t);
  const pieces: SentencePiece[] = [];
  for (const [piece, id] of Object.entries(vocab)) {
    const a = added.get(id);
    let type: PieceType = PieceType.normal;
    if (piece === "<unk>") type = PieceType.unknown;
    else if (/^<0x[0-9A-F]{2}>$/.test(piece)) type = PieceType.byte;
    else if (a !== undefined) type = a.special ? PieceType.control : PieceType.userDefined;
    pieces[id] = { piece, score: type === PieceType.normal ? -id : 0, type };
  }
  const bytes = serializeSentencePieceModel({
    pieces,
    trainerSpec: {
      modelType: ModelType.bpe,
      vocabSize: pieces.length,
      splitDigits: true,
      byteFallback: true,
      treatWhitespaceAsSuffix: false,
      unkId: 3,
      bosId: 2,
      eosId: 1,
      padId: 0,
      unkPiece: "<unk>",
      bosPiece: "<bos>",
      eosPiece: "<eos>",
      padPiece: "<pad>",
      unkSurface: " \u2047 ",
    },
    normalizerSpec: {
      name: "identity",
      precompiledCharsmapBytes: 0,
      addDummyPrefix: false,
      removeExtraWhitespaces: false,
      escapeWhitespaces: true,
    },
  });
  const path = join(dir, "tokenizer.model");
  await Deno.writeFile(path, bytes);
  return path;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

interface Row {
  name: string;
  vocab: number;
  loadMs: number;
  shortTokS: number;
  shortCharS: number;
  longTokS: number;
  longCharS: number;
}

/** Encodes `texts` repeatedly for about `budgetMs`; returns tokens/s and chars/s (UTF-16 units). */
function throughputOnce(tok: Tokenizer, texts: string[], budgetMs: number): [number, number] {
  let tokens = 0;
  let chars = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < budgetMs) {
    for (const t of texts) {
      tokens += tok.encode(t).length;
      chars += t.length;
    }
    elapsed = performance.now() - start;
  }
  return [tokens / (elapsed / 1000), chars / (elapsed / 1000)];
}

/** Median over 5 rounds of about 600 ms each, after a warm-up pass. */
function throughput(tok: Tokenizer, texts: string[]): [number, number] {
  for (const t of texts) tok.encode(t);
  const rounds = Array.from({ length: 5 }, () => throughputOnce(tok, texts, 600));
  return [median(rounds.map((r) => r[0])), median(rounds.map((r) => r[1]))];
}

async function bench(name: string, path: string, loads: number, corpus: string[]): Promise<Row> {
  const times: number[] = [];
  let tok: Tokenizer | undefined;
  for (let i = 0; i < loads; i++) {
    const t0 = performance.now();
    tok = await loadTokenizer(path);
    times.push(performance.now() - t0);
  }
  if (tok === undefined) throw new Error("no load");
  const long = corpus.join(" ").repeat(4);
  const [shortTokS, shortCharS] = throughput(tok, corpus);
  const [longTokS, longCharS] = throughput(tok, [long]);
  return {
    name,
    vocab: tok.vocabSize,
    loadMs: median(times),
    shortTokS,
    shortCharS,
    longTokS,
    longCharS,
  };
}

const cases = JSON.parse(await Deno.readTextFile(join(FIXTURES, "cases.json")));
const corpus: string[] = cases.strings.filter((s: string) => s.length > 0);
const gemmaJson = await gemma3TokenizerPath();
const dir = await Deno.makeTempDir();
try {
  const gemmaModel = await modelFromJson(gemmaJson, dir);
  const rows = [
    await bench("fixture tokenizer.model", join(FIXTURES, "tokenizer.model"), 5, corpus),
    await bench("fixture tokenizer.json", join(FIXTURES, "tokenizer.json"), 5, corpus),
    await bench("Gemma 3 vocab as tokenizer.model", gemmaModel, 3, corpus),
    await bench("Gemma 3 tokenizer.json", gemmaJson, 3, corpus),
  ];
  const k = (x: number): string => `${(x / 1000).toFixed(0)}k`;
  console.log(
    `corpus: ${corpus.length} fixture strings (${corpus.join("").length} chars); ` +
      `long text: them joined by spaces x4`,
  );
  console.log(
    "| tokenizer | vocab | load ms | short tokens/s | short chars/s | long tokens/s | long chars/s |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.vocab} | ${r.loadMs.toFixed(0)} | ${k(r.shortTokS)} | ${
        k(r.shortCharS)
      } | ${k(r.longTokS)} | ${k(r.longCharS)} |`,
    );
  }
  // How close the SentencePiece loader comes to HF's ids over the same 262k vocabulary (scores here
  // are synthetic, so this is a sanity figure, not a reference check).
  const sp = await loadTokenizer(gemmaModel);
  const hf = await loadTokenizer(gemmaJson);
  const same = corpus.filter((s) => JSON.stringify(sp.encode(s)) === JSON.stringify(hf.encode(s)));
  console.log(`262k vocab: .model and .json ids agree on ${same.length}/${corpus.length} strings`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
