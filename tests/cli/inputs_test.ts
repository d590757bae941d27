/**
 * Where images come from: 5,000 paths as arguments (a command line ONNX Runtime cannot survive in
 * one process) and through stdin, `--files-from`, folders with and without `-r`, and `--shard`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runPg } from "../helpers/cli.ts";
import { records, smallImages, withTinyModel } from "./setup.ts";

const MANY = 5000;

Deno.test("5,000 images through arguments and through stdin all give a record", () =>
  withTinyModel(async (dir, model) => {
    const [img] = await smallImages(join(dir, "imgs"), 1, 16);
    const paths = Array.from({ length: MANY }, () => img);
    const run = ["--model", model, "--max-tokens", "1", "--batch-size", "256", "--json"];
    const [viaArgs, viaStdin] = await Promise.all([
      runPg(["caption", ...paths, ...run]),
      runPg(["caption", "-", ...run], { stdin: paths.join("\n") + "\n" }),
    ]);
    for (const [name, r] of [["arguments", viaArgs], ["stdin", viaStdin]] as const) {
      assert.equal(r.code, 0, `${name}: ${r.stderr.slice(-500)}`);
      assert.doesNotMatch(r.stderr, /overflow/);
      const recs = records(r.stdout);
      assert.equal(recs.length, MANY, name);
      assert.ok(recs.every((x) => x.image === img && x.error === undefined), name);
    }
  }));

Deno.test("folders (sorted, images only; -r walks subfolders), --files-from and stdin mix", () =>
  withTinyModel(async (dir, model) => {
    const top = join(dir, "shots");
    const [a, b] = await smallImages(top, 2);
    const [c] = await smallImages(join(top, "sub"), 1);
    await Deno.writeTextFile(join(top, "notes.txt"), "not an image");
    const list = join(dir, "list.txt");
    await Deno.writeTextFile(list, `${c}\r\n\n${a}\n`);
    const run = ["--model", model, "--max-tokens", "1", "--json"];
    const images = async (args: string[], stdin?: string) => {
      const r = await runPg(["caption", ...args, ...run], { stdin });
      assert.equal(r.code, 0, r.stderr);
      return records(r.stdout).map((x) => x.image);
    };
    assert.deepEqual(await images([top]), [a, b]);
    assert.deepEqual(await images([top, "-r"]), [a, b, c]);
    assert.deepEqual(await images(["--files-from", list, b]), [b, c, a]);
    assert.deepEqual(await images(["-", "--files-from", list], `${b}\n`), [b, c, a]);
    const twice = await runPg(["caption", "-", "--files-from", "-", ...run], { stdin: a });
    assert.equal(twice.code, 2, twice.stderr);
    const none = await runPg([
      "caption",
      join(top, "sub", "..", "sub"),
      "-r",
      "--shard",
      "x",
      ...run,
    ]);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /--shard expects K\/N/);
  }));

Deno.test("--shard 1/3, 2/3 and 3/3 cover the input exactly once", () =>
  withTinyModel(async (dir, model) => {
    const paths = await smallImages(join(dir, "imgs"), 10);
    const run = ["--model", model, "--max-tokens", "1", "--json", "--files-from", "-"];
    const shards = await Promise.all(
      [1, 2, 3].map((k) =>
        runPg(["caption", "--shard", `${k}/3`, ...run], { stdin: paths.join("\n") })
      ),
    );
    const seen: unknown[] = [];
    for (const r of shards) {
      assert.equal(r.code, 0, r.stderr);
      seen.push(...records(r.stdout).map((x) => x.image));
    }
    assert.deepEqual(shards.map((r) => records(r.stdout).length), [4, 3, 3]);
    assert.deepEqual([...seen].sort(), [...paths].sort(), "every image exactly once");
  }));
