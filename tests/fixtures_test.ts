// Completeness and consistency of the committed reference fixtures (tests/fixtures/).
// Uses only Deno and node: built-ins, with tiny independent readers for safetensors headers, zip
// central directories, .npy headers and PNG/JPEG sizes, so it does not depend on the product readers.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { inflateRawSync } from "node:zlib";

const FIX = new URL("./fixtures/", import.meta.url).pathname;

interface StEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}
interface St {
  entries: Map<string, StEntry>;
  bytes: Uint8Array;
  dataStart: number;
}
interface NpyHeader {
  descr: string;
  shape: number[];
  fortran: boolean;
}
interface Manifest {
  total_bytes: number;
  distinct_bytes: number;
  files: { path: string; bytes: number; sha256: string; made_by: string }[];
}
interface ModelCase {
  image: string;
  resized_image: string;
  prompt: string;
  prompt_len: number;
  top2_gaps: number[];
}
interface ModelCases {
  config: { hidden: number; heads: number; kv_heads: number; head_dim: number; layers: number };
  vocab_bv: number;
  vocab_hf: number;
  image_token_id: number;
  numpy_vs_hf_max_rel: number;
  sensitivity_min_rel: Record<string, number>;
  sensitivity_checked: string[];
  cases: ModelCase[];
}
interface Box {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}
interface DetObject {
  label: string;
  loc: number[];
  seg?: number[];
  box: Box;
  box_normalized: Box;
}
interface DetCase {
  mode: string;
  text: string;
  width: number;
  height: number;
  skipped: { raw: string; reason: string }[];
  text_pieces: string[];
  big_vision: DetObject[];
  "hf-demo": DetObject[];
}

function readJson<T>(rel: string): T {
  return JSON.parse(readFileSync(join(FIX, rel), "utf8")) as T;
}

function walk(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    const rel = prefix ? `${prefix}/${name}` : name;
    if (statSync(p).isDirectory()) out.push(...walk(p, rel));
    else out.push(rel);
  }
  return out;
}

function readSafetensors(rel: string): St {
  const bytes = new Uint8Array(readFileSync(join(FIX, rel)));
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<
    string,
    StEntry | Record<string, string>
  >;
  const entries = new Map<string, StEntry>();
  for (const [k, v] of Object.entries(header)) {
    if (k !== "__metadata__") entries.set(k, v as StEntry);
  }
  return { entries, bytes, dataStart: 8 + n };
}

function stGet(st: St, name: string): StEntry {
  const e = st.entries.get(name);
  assert.ok(e, `missing tensor ${name}`);
  return e;
}

function stInts(st: St, name: string): number[] {
  const e = stGet(st, name);
  assert.equal(e.dtype, "I64", name);
  const [a, b] = e.data_offsets;
  const dv = new DataView(st.bytes.buffer, st.bytes.byteOffset + st.dataStart + a, b - a);
  const out: number[] = [];
  for (let i = 0; i < (b - a) / 8; i++) out.push(Number(dv.getBigInt64(i * 8, true)));
  return out;
}

function stFloats(st: St, name: string): Float32Array {
  const e = stGet(st, name);
  assert.equal(e.dtype, "F32", name);
  const [a, b] = e.data_offsets;
  return new Float32Array(st.bytes.slice(st.dataStart + a, st.dataStart + b).buffer);
}

/** Members of a zip (npz) with their .npy headers, from the central directory (no zip64 needed here). */
function readNpz(rel: string): Map<string, NpyHeader> {
  const buf = new Uint8Array(readFileSync(join(FIX, rel)));
  const dv = new DataView(buf.buffer, buf.byteOffset);
  let eocd = buf.length - 22;
  while (eocd >= 0 && dv.getUint32(eocd, true) !== 0x06054b50) eocd--;
  assert.ok(eocd >= 0, `${rel}: no end of central directory`);
  const count = dv.getUint16(eocd + 10, true);
  let p = dv.getUint32(eocd + 16, true);
  const out = new Map<string, NpyHeader>();
  for (let i = 0; i < count; i++) {
    assert.equal(dv.getUint32(p, true), 0x02014b50);
    const method = dv.getUint16(p + 10, true);
    const csize = dv.getUint32(p + 20, true);
    const nlen = dv.getUint16(p + 28, true);
    const xlen = dv.getUint16(p + 30, true);
    const clen = dv.getUint16(p + 32, true);
    const local = dv.getUint32(p + 42, true);
    const name = new TextDecoder().decode(buf.subarray(p + 46, p + 46 + nlen));
    const dataAt = local + 30 + dv.getUint16(local + 26, true) + dv.getUint16(local + 28, true);
    let data = buf.subarray(dataAt, dataAt + csize);
    if (method === 8) data = new Uint8Array(inflateRawSync(data));
    else assert.equal(method, 0, `${rel}:${name}: compression ${method}`);
    out.set(name.replace(/\.npy$/, ""), npyHeader(data));
    p += 46 + nlen + xlen + clen;
  }
  return out;
}

function npyHeader(b: Uint8Array): NpyHeader {
  assert.equal(new TextDecoder().decode(b.subarray(1, 6)), "NUMPY");
  const major = b[6];
  const dv = new DataView(b.buffer, b.byteOffset);
  const len = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const h = new TextDecoder().decode(b.subarray(start, start + len));
  const descr = /'descr':\s*'([^']+)'/.exec(h)?.[1] ?? "";
  const fortran = /'fortran_order':\s*True/.test(h);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(h)?.[1] ?? "";
  const shape = shapeText.split(",").map((s) => s.trim()).filter((s) => s).map(Number);
  const n = shape.reduce((a, c) => a * c, 1);
  const item = Number(/(\d+)$/.exec(descr)?.[1] ?? "0");
  assert.equal(b.length, start + len + n * item, "npy data length");
  return { descr, shape, fortran };
}

function pngInfo(rel: string): { width: number; height: number; depth: number; color: number } {
  const b = readFileSync(join(FIX, rel));
  assert.deepEqual([...b.subarray(1, 4)], [0x50, 0x4e, 0x47], `${rel} is not a PNG`);
  return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), depth: b[24], color: b[25] };
}

function jpegSize(rel: string): { width: number; height: number } {
  const b = readFileSync(join(FIX, rel));
  let p = 2;
  while (p < b.length) {
    const marker = b[p + 1];
    const len = b.readUInt16BE(p + 2);
    if (marker >= 0xc0 && marker <= 0xc2) {
      return { height: b.readUInt16BE(p + 5), width: b.readUInt16BE(p + 7) };
    }
    p += 2 + len;
  }
  throw new Error(`${rel}: no SOF marker`);
}

function imageSize(rel: string): { width: number; height: number } {
  if (!rel.endsWith(".png")) return jpegSize(rel);
  const { width, height } = pngInfo(rel);
  return { width, height };
}

Deno.test("fixtures: manifest lists every file with its size and sha256, under budget", () => {
  const m = readJson<Manifest>("manifest.json");
  // Plain string order, as make_manifest.py sorts (not tree order: "pg1-tiny-padded/" < "pg1-tiny/").
  const onDisk = walk(FIX).filter((f) => f !== "manifest.json").sort();
  assert.deepEqual(m.files.map((f) => f.path), onDisk);
  let total = 0;
  const distinct = new Map<string, number>();
  for (const f of m.files) {
    const b = readFileSync(join(FIX, f.path));
    assert.equal(b.length, f.bytes, f.path);
    assert.equal(createHash("sha256").update(b).digest("hex"), f.sha256, f.path);
    assert.ok(f.bytes < 5_000_000, `${f.path} >= 5 MB`);
    assert.notEqual(f.made_by, "unknown", f.path);
    total += f.bytes;
    distinct.set(f.sha256, f.bytes);
  }
  assert.equal(total, m.total_bytes);
  // Git stores each content once: the budget counts identical files (hf5/ weights) once.
  const unique = [...distinct.values()].reduce((a, b) => a + b, 0);
  assert.equal(unique, m.distinct_bytes);
  // 15 MB until the trained shapes demo model (models/shapes/: ~2 MB fp16 weights, VQ-VAE decoder,
  // 24 held-out scenes) was added; it is the one real-looking model the demo and accuracy test need.
  assert.ok(unique < 19_000_000, `fixtures total ${unique} distinct bytes`);
  const readme = readFileSync(join(FIX, "README.md"), "utf8");
  for (
    const d of [
      "tokenizer/",
      "images/",
      "models/",
      "vqvae/",
      "detseg/",
      "formats/",
      "lora/",
      "hf5/",
    ]
  ) {
    assert.ok(readme.includes(d), `README does not describe ${d}`);
  }
});

Deno.test("fixtures: tokenizer ids are consistent and in range", () => {
  const sp = readJson<Record<string, number>>("tokenizer/special.json");
  assert.deepEqual([sp.pad, sp.eos, sp.bos, sp.unk], [0, 1, 2, 3]);
  assert.equal(sp.seg000, sp.loc0000 + 1024);
  assert.equal(sp.sp_vocab_size, sp.seg000 + 128);
  assert.equal(sp.image, sp.sp_vocab_size);
  assert.equal(sp.hf_vocab_size, sp.image + 1);
  const c = readJson<
    { strings: string[]; sp_ids: number[][]; hf_ids: number[][]; disagree: number[] }
  >(
    "tokenizer/cases.json",
  );
  assert.ok(c.strings.length >= 300);
  assert.equal(c.sp_ids.length, c.strings.length);
  assert.equal(c.hf_ids.length, c.strings.length);
  const disagree: number[] = [];
  c.strings.forEach((_, i) => {
    for (const id of c.sp_ids[i]) assert.ok(id >= 0 && id < sp.sp_vocab_size, `sp id ${id}`);
    for (const id of c.hf_ids[i]) assert.ok(id >= 0 && id < sp.hf_vocab_size, `hf id ${id}`);
    if (JSON.stringify(c.sp_ids[i]) !== JSON.stringify(c.hf_ids[i])) disagree.push(i);
  });
  assert.deepEqual(c.disagree, disagree);
  const i123 = c.strings.indexOf("<loc0123>");
  assert.deepEqual(c.sp_ids[i123], [sp.loc0000 + 123]);
  assert.deepEqual(c.hf_ids[c.strings.indexOf("<seg045>")], [sp.seg000 + 45]);
  const tj = readJson<{ added_tokens: { id: number; content: string }[]; model: { type: string } }>(
    "tokenizer/tokenizer.json",
  );
  assert.equal(tj.model.type, "BPE");
  assert.equal(tj.added_tokens.find((t) => t.content === "<image>")?.id, sp.image);
  assert.equal(tj.added_tokens.find((t) => t.content === "<loc0000>")?.id, sp.loc0000);
  assert.ok(statSync(join(FIX, "tokenizer/tokenizer.model")).size > 1000);
  assert.ok(statSync(join(FIX, "tokenizer/tokenizer_config.json")).size > 0);
});

Deno.test("fixtures: images and their expected resized PNGs", () => {
  const j = readJson<{
    sizes: number[];
    images: {
      file: string;
      width: number;
      height: number;
      mode: string;
      loaded_width: number;
      loaded_height: number;
      expected: Record<string, string>;
      deliberately_differ?: string;
      source: string;
      licence: string;
    }[];
  }>("images/images.json");
  assert.deepEqual(j.sizes, [224, 56]);
  const names = j.images.map((e) => e.file);
  for (const n of ["rgba.png", "gray.png", "gray16.png", "exif6.jpg", "panorama.jpg"]) {
    assert.ok(names.includes(n), n);
  }
  for (const e of j.images) {
    assert.ok(e.source && e.licence, e.file);
    assert.deepEqual(imageSize(`images/${e.file}`), { width: e.width, height: e.height }, e.file);
    for (const s of j.sizes) {
      const info = pngInfo(`images/${e.expected[String(s)]}`);
      assert.deepEqual(info, { width: s, height: s, depth: 8, color: 2 }, `${e.file} @ ${s}`);
    }
  }
  const g16 = j.images.find((e) => e.file === "gray16.png");
  assert.ok(g16?.deliberately_differ);
  assert.equal(pngInfo("images/gray16.png").depth, 16);
  assert.equal(pngInfo("images/rgba.png").color, 6);
  const ex = j.images.find((e) => e.file === "exif6.jpg");
  assert.deepEqual([ex?.loaded_width, ex?.loaded_height], [ex?.height, ex?.width]);
  assert.deepEqual(jpegSize("images/panorama.jpg"), { width: 4000, height: 1000 });
});

function checkModel(name: string): void {
  const dir = `models/${name}`;
  const cj = readJson<ModelCases>(`${dir}/cases.json`);
  const { hidden: D, heads: N, kv_heads: K, head_dim: H, layers: L } = cj.config;
  const bv = readNpz(`${dir}/bv.npz`);
  assert.deepEqual(bv.get("llm/embedder/input_embedding")?.shape, [cj.vocab_bv, D]);
  assert.deepEqual(bv.get("llm/layers/attn/q_einsum/w")?.shape, [L, N, D, H]);
  assert.deepEqual(bv.get("llm/layers/attn/kv_einsum/w")?.shape, [L, 2, K, D, H]);
  assert.deepEqual(bv.get("llm/layers/attn/attn_vec_einsum/w")?.shape, [L, N, H, D]);
  assert.equal(bv.get("llm/layers/mlp/gating_einsum")?.shape[1], 2);
  assert.equal(bv.get("img/Transformer/encoderblock/LayerNorm_0/scale")?.shape.length, 2);
  assert.equal(bv.get("img/head/kernel")?.shape[1], D);
  const g2 = name === "pg2-tiny";
  assert.equal(bv.has("llm/layers/post_ffw_norm/scale"), g2);
  for (const h of bv.values()) assert.equal(h.descr, "<f4");

  const cfg = readJson<{ text_config: { vocab_size: number }; image_token_index: number }>(
    `${dir}/hf/config.json`,
  );
  assert.equal(cfg.text_config.vocab_size, cj.vocab_hf);
  assert.equal(cfg.image_token_index, cj.image_token_id);
  const pre = readJson<{ image_seq_length: number; image_processor_type: string }>(
    `${dir}/hf/preprocessor_config.json`,
  );
  assert.equal(pre.image_seq_length, 16);
  assert.equal(pre.image_processor_type, "SiglipImageProcessor");
  for (const f of ["tokenizer.json", "tokenizer_config.json", "tokenizer.model"]) {
    assert.ok(statSync(join(FIX, dir, "hf", f)).size > 0, f);
  }
  const w = readSafetensors(`${dir}/hf/model.safetensors`);
  assert.deepEqual(stGet(w, "language_model.model.embed_tokens.weight").shape, [cj.vocab_hf, D]);
  assert.deepEqual(stGet(w, "language_model.model.layers.0.self_attn.o_proj.weight").shape, [
    D,
    N * H,
  ]);
  assert.deepEqual(stGet(w, "language_model.model.layers.0.self_attn.k_proj.weight").shape, [
    K * H,
    D,
  ]);
  assert.ok(w.entries.has("multi_modal_projector.linear.weight"));
  assert.ok(w.entries.has("vision_tower.vision_model.post_layernorm.weight"));

  const e = readSafetensors(`${dir}/expected.safetensors`);
  assert.ok(cj.cases.length >= 6);
  const prompts = cj.cases.map((c) => c.prompt.split(" ")[0]);
  for (const t of ["caption", "answer", "detect", "segment"]) assert.ok(prompts.includes(t), t);
  assert.ok(cj.numpy_vs_hf_max_rel < 1e-5);
  for (const v of cj.sensitivity_checked) assert.ok(cj.sensitivity_min_rel[v] >= 1e-2, v);
  cj.cases.forEach((c, i) => {
    const ids = stInts(e, `case${i}.input_ids`);
    const T = ids.length;
    assert.equal(T, c.prompt_len);
    assert.equal(ids.filter((x) => x === cj.image_token_id).length, 16);
    assert.ok(ids.every((x) => x >= 0 && x < cj.vocab_hf));
    assert.deepEqual(stInts(e, `case${i}.position_ids`), ids.map((_, k) => k + 1));
    assert.deepEqual(stInts(e, `case${i}.attention_mask`), ids.map(() => 1));
    assert.deepEqual(stInts(e, `case${i}.token_type_ids`), ids.map(() => 0));
    assert.deepEqual(stGet(e, `case${i}.pixel_values`).shape, [1, 3, 56, 56]);
    assert.deepEqual(stGet(e, `case${i}.image_features`).shape, [16, D]);
    assert.deepEqual(stGet(e, `case${i}.logits`).shape, [1, T, cj.vocab_hf]);
    const greedy = stInts(e, `case${i}.greedy_ids`);
    assert.equal(greedy.length, 24);
    assert.ok(greedy.every((x) => x >= 0 && x < cj.vocab_bv));
    assert.equal(c.top2_gaps.length, 24);
    assert.ok(Math.min(...c.top2_gaps) >= 1e-3);
    // the first greedy token is the argmax of the stored last-position logits
    const lg = stFloats(e, `case${i}.logits`).subarray((T - 1) * cj.vocab_hf, T * cj.vocab_hf);
    assert.equal(lg.indexOf(Math.max(...lg)), greedy[0]);
    assert.ok(statSync(join(FIX, c.image)).size > 0 && pngInfo(c.resized_image).width === 56);
  });
  const bShape = stGet(e, "batch.input_ids").shape;
  assert.equal(bShape[0], 3);
  for (const k of ["attention_mask", "position_ids", "token_type_ids"]) {
    assert.deepEqual(stGet(e, `batch.${k}`).shape, bShape, k);
  }
  assert.deepEqual(stGet(e, "batch.logits").shape, [...bShape, cj.vocab_hf]);
  const mask = stInts(e, "batch.attention_mask");
  const pos = stInts(e, "batch.position_ids");
  const lens = [0, 1, 2].map((b) =>
    mask.slice(b * bShape[1], (b + 1) * bShape[1]).reduce((a, x) => a + x)
  );
  assert.ok(new Set(lens).size > 1, "batch prompts have different lengths");
  for (let b = 0; b < 3; b++) {
    const row = mask.slice(b * bShape[1], (b + 1) * bShape[1]);
    assert.equal(row[row.length - 1], 1, "left padding");
    let p = 0;
    row.forEach((m, t) => assert.equal(pos[b * bShape[1] + t], m ? ++p : 0));
  }
}

Deno.test("fixtures: pg1-tiny npz, HF folder and expected outputs agree in shape", () => {
  checkModel("pg1-tiny");
  const bf = readNpz("models/pg1-tiny/bv-bf16.npz");
  const f32 = readNpz("models/pg1-tiny/bv.npz");
  assert.deepEqual([...bf.keys()], [...f32.keys()]);
  for (const [k, h] of bf) {
    assert.equal(h.descr, "<V2", k);
    assert.deepEqual(h.shape, f32.get(k)?.shape, k);
  }
  const e = readSafetensors("models/pg1-tiny/expected-bf16.safetensors");
  const e32 = readSafetensors("models/pg1-tiny/expected.safetensors");
  for (let i = 0; i < 6; i++) {
    assert.deepEqual(stGet(e, `case${i}.logits`).shape, stGet(e32, `case${i}.logits`).shape);
    assert.equal(stInts(e, `case${i}.greedy_ids`).length, 24);
  }
});

Deno.test("fixtures: pg2-tiny npz, HF folder and expected outputs agree in shape", () => {
  checkModel("pg2-tiny");
});

Deno.test("fixtures: VQ-VAE checkpoint, masks and pasted PNGs", () => {
  const v = readNpz("vqvae/vae.npz");
  const want: Record<string, number[]> = {
    "_vq_vae._embedding": [128, 512],
    "decoder.0.weight": [128, 512, 1, 1],
    "decoder.2.net.0.weight": [128, 128, 3, 3],
    "decoder.3.net.4.weight": [128, 128, 1, 1],
    "decoder.4.weight": [128, 128, 4, 4],
    "decoder.6.weight": [128, 64, 4, 4],
    "decoder.8.weight": [64, 32, 4, 4],
    "decoder.10.weight": [32, 16, 4, 4],
    "decoder.12.weight": [1, 16, 1, 1],
    "decoder.12.bias": [1],
  };
  for (const [k, s] of Object.entries(want)) assert.deepEqual(v.get(k)?.shape, s, k);
  assert.ok([...v.values()].every((h) => h.descr === "<f4"));
  const m = readSafetensors("vqvae/masks64.safetensors");
  assert.deepEqual(stGet(m, "masks").shape, [20, 64, 64]);
  const codes = stInts(m, "codes");
  assert.ok(codes.every((c) => c >= 0 && c < 128));
  const j = readJson<{
    image_width: number;
    image_height: number;
    sequences: {
      codes: number[];
      loc: number[];
      box_big_vision_xyxy: number[];
      box_hf_demo_xyxy: number[];
    }[];
  }>("vqvae/codes.json");
  assert.equal(j.sequences.length, 20);
  j.sequences.forEach((s, i) => {
    assert.deepEqual(s.codes, codes.slice(i * 16, i * 16 + 16));
    assert.ok(s.loc[2] > s.loc[0] && s.loc[3] > s.loc[1]);
    for (const conv of ["big_vision", "hf-demo"]) {
      const info = pngInfo(`vqvae/pasted/${i}_${conv}.png`);
      assert.deepEqual([info.width, info.height, info.depth, info.color], [640, 480, 8, 0]);
    }
  });
});

Deno.test("fixtures: detection/segmentation answers under both conventions", () => {
  const j = readJson<{ rules: string[]; cases: DetCase[] }>("detseg/cases.json");
  assert.equal(j.cases.length, 40);
  assert.ok(j.rules.length > 0);
  const reasons = new Set(j.cases.flatMap((c) => c.skipped.map((s) => s.reason)));
  for (const r of ["loc_count", "seg_count", "y_order", "x_order"]) assert.ok(reasons.has(r), r);
  let segObjects = 0;
  for (const c of j.cases) {
    assert.ok(c.mode === "detect" || c.mode === "segment");
    const a = c.big_vision;
    const b = c["hf-demo"];
    assert.equal(a.length, b.length, c.text);
    a.forEach((o, k) => {
      assert.equal(o.label, b[k].label);
      assert.deepEqual(o.loc, b[k].loc);
      assert.equal(o.loc.length, 4);
      if (c.mode === "segment") assert.equal(o.seg?.length, 16);
      if (o.seg) segObjects++;
      for (const box of [o.box, b[k].box]) {
        assert.ok(0 <= box.x1 && box.x1 <= box.x2 && box.x2 <= c.width, c.text);
        assert.ok(0 <= box.y1 && box.y1 <= box.y2 && box.y2 <= c.height, c.text);
      }
      assert.equal(o.box_normalized.x1, o.loc[1] / 1023);
      assert.equal(b[k].box_normalized.y2, o.loc[2] / 1024);
    });
  }
  assert.ok(segObjects >= 5);
});
