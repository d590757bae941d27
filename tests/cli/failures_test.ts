/**
 * One image's failure is that image's failure: bad images in a run become error records and the
 * others go on (at batch sizes 1 and 4), `--fail-fast` stops at the first, a file that cannot be
 * written fails only its image, and a run killed with SIGKILL resumes from `--output-dir`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { pgArgs, ROOT, runPg } from "../helpers/cli.ts";
import { FIXTURE_IMAGES, records, smallImages, withoutTimings, withTinyModel } from "./setup.ts";

/** Bad files of each kind the issue names, written into `dir`. */
async function badImages(dir: string): Promise<Record<string, string>> {
  const jpeg = await Deno.readFile(FIXTURE_IMAGES[5]);
  const bad = {
    empty: join(dir, "empty.png"),
    text: join(dir, "text.jpg"),
    truncated: join(dir, "truncated.jpg"),
    missing: join(dir, "missing.png"),
    corrupt: join(dir, "corrupt.png"),
  };
  await Deno.writeFile(bad.empty, new Uint8Array());
  await Deno.writeTextFile(bad.text, "hello, I am not a JPEG\n");
  await Deno.writeFile(bad.truncated, jpeg.subarray(0, 3000));
  const png = await Deno.readFile(FIXTURE_IMAGES[3]);
  const corrupt = png.slice();
  corrupt.fill(0x5a, 60, 400); // inside the IDAT data: zlib fails
  await Deno.writeFile(bad.corrupt, corrupt);
  return bad;
}

Deno.test("a bad image in the middle of 10: 9 results, its error record, exit 3, at batch 1 and 4", () =>
  withTinyModel(async (dir, model) => {
    const bad = await badImages(dir);
    const good = await smallImages(join(dir, "imgs"), 9);
    const run = ["--model", model, "--max-tokens", "4", "--json"];
    const alone = await runPg(["caption", ...good, ...run]);
    assert.equal(alone.code, 0, alone.stderr);
    const want = records(alone.stdout).map(withoutTimings);
    for (const [kind, path] of Object.entries(bad)) {
      const images = [...good.slice(0, 5), path, ...good.slice(5)];
      for (const batch of ["1", "4"]) {
        const r = await runPg(["caption", ...images, ...run, "--batch-size", batch]);
        const what = `${kind} at batch ${batch}`;
        assert.equal(r.code, 3, `${what}: ${r.stderr}`);
        const recs = records(r.stdout);
        assert.equal(recs.length, 10, what);
        assert.deepEqual(recs[5], {
          image: path,
          error: { kind: "bad_image", message: (recs[5].error as { message: string }).message },
        });
        assert.match((recs[5].error as { message: string }).message, new RegExp(path), what);
        assert.deepEqual(recs.filter((_, i) => i !== 5).map(withoutTimings), want, what);
        const lines = r.stderr.split("\n").filter((l) => l.includes("bad_image"));
        assert.equal(lines.length, 1, r.stderr);
        assert.match(r.stderr, /1 of 10 image\(s\) failed/);
      }
    }
    // Plain output: only the good images' lines on stdout.
    const plain = await runPg(["caption", good[0], bad.text, good[1], "--model", model]);
    assert.equal(plain.code, 3, plain.stderr);
    assert.equal(plain.stdout.trimEnd().split("\n").length, 2);
    // --fail-fast stops at the first failed image.
    const fast = await runPg(["caption", good[0], bad.empty, good[1], ...run, "--fail-fast"]);
    assert.equal(fast.code, 3, fast.stderr);
    assert.deepEqual(records(fast.stdout).map((x) => x.image), [good[0], bad.empty]);
    assert.match(fast.stderr, /--fail-fast/);
  }));

Deno.test("a per-image file that cannot be written fails that image only (output_failed)", () =>
  withTinyModel(async (dir, model) => {
    const images = await smallImages(join(dir, "imgs"), 3);
    const overlays = join(dir, "overlays");
    await Deno.mkdir(join(overlays, "img-001.png"), { recursive: true }); // a folder in the way
    const r = await runPg([
      "detect",
      ...images,
      ...["--label", "cat", "--model", model, "--max-tokens", "8", "--json"],
      ...["--overlay", overlays],
    ]);
    assert.equal(r.code, 3, r.stderr);
    const recs = records(r.stdout);
    assert.deepEqual(recs.map((x) => x.image), images);
    assert.equal((recs[1].error as { kind: string }).kind, "output_failed");
    assert.equal(recs[0].error, undefined);
    assert.equal(recs[2].error, undefined);
    assert.ok((await Deno.stat(join(overlays, "img-002.png"))).isFile);
  }));

Deno.test("a run killed with SIGKILL resumes from --output-dir with the uninterrupted results", () =>
  withTinyModel(async (dir, model) => {
    const images = await smallImages(join(dir, "imgs"), 40);
    const run = ["--model", model, "--max-tokens", "48", "--json"];
    const whole = await runPg(["caption", ...images, ...run]);
    assert.equal(whole.code, 0, whole.stderr);
    const want = records(whole.stdout).map(withoutTimings);

    const out = join(dir, "results");
    const results = () => {
      try {
        return [...Deno.readDirSync(out)].filter((e) => e.name.endsWith(".png.json")).length;
      } catch {
        return 0;
      }
    };
    const child = new Deno.Command(Deno.execPath(), {
      args: pgArgs(["caption", ...images, ...run, "--output-dir", out]),
      cwd: ROOT,
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 60_000;
    while (results() < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    const before = results();
    assert.ok(before >= 5 && before < images.length, `killed after ${before} results`);

    // A temporary result file from a killed run, old enough to belong to no live run.
    const stale = join(out, ".img-999.png.json.partial-deadbeef");
    await Deno.writeTextFile(stale, "{");
    const hourAgo = new Date(Date.now() - 3_600_000);
    await Deno.utime(stale, hourAgo, hourAgo);
    const resumed = await runPg(["caption", ...images, ...run, "--output-dir", out]);
    assert.ok(!(await Deno.stat(stale).then(() => true, () => false)), "stale temporary removed");
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, new RegExp(`${before} image\\(s\\) already have results`));
    assert.equal(records(resumed.stdout).length, images.length - before, "only the rest ran");
    const stored = images.map((p) => {
      const name = p.split("/").at(-1);
      return withoutTimings(JSON.parse(Deno.readTextFileSync(join(out, `${name}.json`))));
    });
    assert.deepEqual(stored, want);
    assert.equal(results(), images.length);
  }));
