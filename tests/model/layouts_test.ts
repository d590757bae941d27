/**
 * Every tensor-name layout transformers has written for PaliGemma (NAME_LAYOUTS): a table of real
 * names per layout and the canonical name each stands for; pg1-tiny's weights stored under each
 * layout open as the same canonical tensors, with the layout recognised from the names; a file
 * mixing two layouts is refused naming the missing tensor.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { openCheckpoint } from "../../lib/checkpoint/open.ts";
import { openSafetensors, writeSafetensors } from "../../lib/checkpoint/safetensors.ts";
import { InputError } from "../../lib/errors.ts";
import { canonicalName, detectLayout, mapName, NAME_LAYOUTS } from "../../lib/model/names.ts";

const FIX = new URL("../fixtures/models/", import.meta.url).pathname;

/** Per layout: names as that version stores them → canonical (legacy HF) name. Written out by hand. */
const TABLE: Record<string, [string, string][]> = {
  legacy: [
    [
      "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
      "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight",
    ],
    ["multi_modal_projector.linear.bias", "multi_modal_projector.linear.bias"],
    [
      "language_model.model.layers.1.self_attn.q_proj.weight",
      "language_model.model.layers.1.self_attn.q_proj.weight",
    ],
    ["language_model.lm_head.weight", "language_model.lm_head.weight"],
  ],
  "4.52-modules": [
    [
      "model.vision_tower.vision_model.embeddings.patch_embedding.weight",
      "vision_tower.vision_model.embeddings.patch_embedding.weight",
    ],
    ["model.multi_modal_projector.linear.weight", "multi_modal_projector.linear.weight"],
    ["model.language_model.embed_tokens.weight", "language_model.model.embed_tokens.weight"],
    ["lm_head.weight", "language_model.lm_head.weight"],
  ],
  "4.52-base": [
    [
      "vision_tower.vision_model.post_layernorm.bias",
      "vision_tower.vision_model.post_layernorm.bias",
    ],
    ["multi_modal_projector.linear.weight", "multi_modal_projector.linear.weight"],
    ["language_model.norm.weight", "language_model.model.norm.weight"],
  ],
  "5-modules": [
    [
      "model.vision_tower.encoder.layers.1.self_attn.out_proj.bias",
      "vision_tower.vision_model.encoder.layers.1.self_attn.out_proj.bias",
    ],
    [
      "model.vision_tower.embeddings.position_embedding.weight",
      "vision_tower.vision_model.embeddings.position_embedding.weight",
    ],
    ["model.multi_modal_projector.linear.bias", "multi_modal_projector.linear.bias"],
    [
      "model.language_model.layers.0.mlp.down_proj.weight",
      "language_model.model.layers.0.mlp.down_proj.weight",
    ],
    ["lm_head.weight", "language_model.lm_head.weight"],
  ],
  "5-base": [
    ["vision_tower.post_layernorm.weight", "vision_tower.vision_model.post_layernorm.weight"],
    ["multi_modal_projector.linear.bias", "multi_modal_projector.linear.bias"],
    [
      "language_model.layers.1.input_layernorm.weight",
      "language_model.model.layers.1.input_layernorm.weight",
    ],
  ],
};

Deno.test("name layouts: the table of real names maps to the canonical names", () => {
  assert.deepEqual(NAME_LAYOUTS.map((l) => l.id).sort(), Object.keys(TABLE).sort());
  for (const layout of NAME_LAYOUTS) {
    for (const [stored, canonical] of TABLE[layout.id]) {
      assert.equal(mapName(stored, layout), canonical, `${layout.id}: ${stored}`);
    }
    assert.equal(mapName("something.else.weight", layout), undefined);
    assert.ok(layout.writtenBy.length > 0);
  }
  // One name alone: the first layout with a prefix for it.
  assert.equal(
    canonicalName("model.vision_tower.encoder.layers.0.mlp.fc2.bias"),
    "vision_tower.vision_model.encoder.layers.0.mlp.fc2.bias",
  );
  assert.equal(canonicalName("lm_head.weight"), "language_model.lm_head.weight");
  assert.equal(canonicalName("other.weight"), "other.weight");
});

/** The inverse of a layout's prefixes: canonical name → the name that layout stores. */
function storedName(canonical: string, id: string): string {
  const layout = NAME_LAYOUTS.find((l) => l.id === id)!;
  for (const [from, to] of layout.prefixes) {
    if (canonical.startsWith(to)) {
      const stored = from + canonical.slice(to.length);
      if (mapName(stored, layout) === canonical) return stored;
    }
  }
  throw new Error(`${id} cannot store ${canonical}`);
}

/** pg1-tiny's hf/ folder with model.safetensors rewritten by `rename`. */
async function folderWith(dir: string, rename: (name: string) => string): Promise<string> {
  const src = join(FIX, "pg1-tiny", "hf");
  const out = join(dir, "hf");
  await Deno.mkdir(out, { recursive: true });
  await Deno.copyFile(join(src, "config.json"), join(out, "config.json"));
  const store = await openSafetensors(join(src, "model.safetensors"));
  try {
    const tensors = store.names().map((n) => {
      const ref = store.get(n)!;
      return { name: rename(n), dtype: ref.dtype, shape: ref.shape, data: () => ref.read() };
    });
    await writeSafetensors(join(out, "model.safetensors"), tensors, { format: "pt" });
  } finally {
    store.close();
  }
  return out;
}

Deno.test("name layouts: pg1-tiny stored under each layout opens as the same tensors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pg-layouts-" });
  const ref = await openCheckpoint(join(FIX, "pg1-tiny", "hf"));
  try {
    assert.equal(ref.layout, "legacy");
    for (const layout of NAME_LAYOUTS) {
      const folder = await folderWith(join(dir, layout.id), (n) => storedName(n, layout.id));
      const ck = await openCheckpoint(folder);
      try {
        assert.equal(ck.layout, layout.id);
        assert.deepEqual([...ck.tensors.keys()], [...ref.tensors.keys()], layout.id);
        for (const [name, t] of ck.tensors) {
          const want = ref.tensors.get(name)!;
          assert.deepEqual(t.shape, want.shape, name);
          assert.deepEqual(await t.read(), await want.read(), `${layout.id}: ${name}`);
        }
      } finally {
        ck.close();
      }
    }
  } finally {
    ref.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("name layouts: transformers 5's hf5/ folders are recognised (legacy names)", async () => {
  for (const model of ["pg1-tiny", "pg2-tiny"]) {
    const ck = await openCheckpoint(join(FIX, model, "hf5"));
    ck.close();
    assert.equal(ck.layout, "legacy", model);
  }
});

Deno.test("name layouts: a file mixing two layouts is refused naming a missing tensor", async () => {
  const dir = await Deno.makeTempDir({ prefix: "pg-layouts-" });
  try {
    // Vision tower in transformers 5 module names, the rest legacy.
    const folder = await folderWith(
      dir,
      (n) => n.startsWith("vision_tower.vision_model.") ? storedName(n, "5-modules") : n,
    );
    await assert.rejects(() => openCheckpoint(folder), (e: unknown) => {
      assert.ok(e instanceof InputError);
      // Neither layout finds everything; the message names what the closer one lacks.
      assert.match(e.message, /model\.safetensors: missing tensor multi_modal_projector\.linear\./);
      assert.match(e.message, /\(and \d+ more\); the names are closest to the 5-modules layout/);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("name layouts: detectLayout prefers the first layout that finds everything", () => {
  const wanted = ["language_model.model.norm.weight", "multi_modal_projector.linear.bias"];
  // Legacy names also match 4.52-base's `language_model.` prefix, but only legacy finds norm.
  const legacy = detectLayout([
    "language_model.model.norm.weight",
    "multi_modal_projector.linear.bias",
  ], wanted);
  assert.equal(legacy.layout.id, "legacy");
  assert.deepEqual(legacy.missing, []);
  const base = detectLayout(
    ["language_model.norm.weight", "multi_modal_projector.linear.bias"],
    wanted,
  );
  assert.equal(base.layout.id, "4.52-base");
  const none = detectLayout(["x.weight"], wanted);
  assert.equal(none.missing.length, 2);
});
