import assert from "node:assert/strict";
import { join } from "node:path";
import { expectedTensors } from "../lib/model/names.ts";
import { tinyConfig } from "../lib/model/presets.ts";
import { writeSyntheticBigVision, writeSyntheticHf } from "../lib/synthetic.ts";

/** Runs main.ts as a subprocess, as a user would. */
async function pg(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "main.ts",
      ...args,
    ],
    cwd: new URL("..", import.meta.url),
    stdout: "piped",
    stderr: "piped",
  });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function count(shapes: { shape: readonly number[] }[]): number {
  return shapes.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
}

Deno.test("inspect --json reports format, config, parameters per part, dtypes and bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = tinyConfig(2);
    await writeSyntheticBigVision(join(dir, "bv.npz"), cfg, { dtype: "BF16" });
    await writeSyntheticHf(join(dir, "hf"), cfg, { dtype: "F32" });
    const groups = expectedTensors(cfg);
    const want = {
      vision: count(groups.vision),
      projector: count(groups.projector),
      text: count(groups.text),
    };
    for (
      const [path, format, dtype, width] of [
        ["bv.npz", "big_vision", "BF16", 2],
        ["hf", "hf", "F32", 4],
      ] as const
    ) {
      const r = await pg("inspect", join(dir, path), "--json");
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split("\n");
      assert.equal(lines.length, 1, "one JSON object");
      const rep = JSON.parse(lines[0]);
      assert.equal(rep.format, format);
      assert.deepEqual(rep.config, cfg);
      const total = want.vision + want.projector + want.text;
      assert.deepEqual(rep.parameters, { ...want, total });
      assert.deepEqual(Object.keys(rep.dtypes), [dtype]);
      assert.equal(rep.bytes, total * width);
    }
    const text = await pg("inspect", join(dir, "bv.npz"));
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /format: +big_vision \.npz/);
    assert.match(text.stdout, /PaliGemma 2/);
    assert.match(text.stdout, /dtypes: +BF16/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("inspect errors: one line, exit 3 (bad input) or 2 (usage)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "x.bin"), "not a checkpoint");
    const unknown = await pg("inspect", join(dir, "x.bin"));
    assert.equal(unknown.code, 3);
    assert.equal(unknown.stdout, "");
    assert.equal(unknown.stderr.trim().split("\n").length, 1);
    assert.match(unknown.stderr, /x\.bin: unknown checkpoint format/);

    await Deno.writeTextFile(join(dir, "broken.npz"), "PK\u0003\u0004 truncated");
    const broken = await pg("inspect", join(dir, "broken.npz"));
    assert.equal(broken.code, 3);
    assert.equal(broken.stderr.trim().split("\n").length, 1, broken.stderr);

    const missing = await pg("inspect", join(dir, "nothing-here"));
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /nothing-here: no such file or directory/);

    const hf = join(dir, "hf");
    await writeSyntheticHf(hf, tinyConfig(1));
    const json = JSON.parse(await Deno.readTextFile(join(hf, "config.json")));
    json.text_config.num_hidden_layers = 3;
    await Deno.writeTextFile(join(hf, "config.json"), JSON.stringify(json));
    const short = await pg("inspect", hf);
    assert.equal(short.code, 3);
    assert.equal(short.stderr.trim().split("\n").length, 1);
    assert.match(short.stderr, /missing tensor language_model\.model\.layers\.2\./);

    const usage = await pg("inspect");
    assert.equal(usage.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
