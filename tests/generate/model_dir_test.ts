/**
 * openModelDir's refusals, as typed errors with their facts in fields (cli/wording.ts words them
 * for the command line; tests/caption_test.ts checks that wording end to end).
 */

import assert from "node:assert/strict";
import * as fs from "node:fs";
import { join } from "node:path";
import { GRAPHS, openModelDir, pickPrecision } from "../../lib/backend/model_dir.ts";
import {
  MissingGraphs,
  MissingPrecision,
  NotAModelFolder,
  NotConverted,
} from "../../lib/backend/model_errors.ts";
import { FIX, withTempDir } from "./fixture_models.ts";

const HF = join(FIX, "pg1-tiny", "hf");

/** Asserts that opening `path` fails with `cls` and that the error has `fields`. */
async function refused<T extends Error>(
  path: string,
  cls: new (...args: never[]) => T,
  fields: Partial<Record<keyof T, unknown>>,
): Promise<void> {
  await assert.rejects(openModelDir(path), (e: unknown) => {
    assert.ok(e instanceof cls, `${path}: ${e}`);
    for (const [k, v] of Object.entries(fields)) assert.deepEqual(e[k as keyof T], v, k);
    assert.ok(e.message.startsWith(`${path}: `), e.message);
    return true;
  });
}

Deno.test("openModelDir refuses checkpoints, plain files and incomplete folders by type", () =>
  withTempDir(async (tmp) => {
    await refused(join(FIX, "pg1-tiny", "bv.npz"), NotConverted, {
      what: "a big_vision checkpoint",
    });
    await refused(join(HF, "model.safetensors"), NotConverted, { what: "an HF checkpoint" });
    await refused(HF, NotConverted, { what: "an HF checkpoint folder" });
    await refused(join(HF, "config.json"), NotAModelFolder, { reason: "file" });
    await refused(tmp, NotAModelFolder, { reason: "no onnx folder" });

    // onnx/ with two of the three fp32 graphs: no complete precision.
    const model = join(tmp, "model");
    fs.mkdirSync(join(model, "onnx"), { recursive: true });
    for (const f of ["config.json", "tokenizer.json"]) fs.copyFileSync(join(HF, f), join(model, f));
    for (const g of GRAPHS.slice(0, 2)) fs.writeFileSync(join(model, "onnx", `${g}.onnx`), "");
    await refused(model, MissingGraphs, { path: model });

    // All three fp32 graphs: it opens, and asking for q4 names what is there.
    fs.writeFileSync(join(model, "onnx", `${GRAPHS[2]}.onnx`), "");
    const dir = await openModelDir(model);
    assert.deepEqual(dir.dtypes, ["fp32"]);
    assert.equal(pickPrecision(dir), "fp32");
    assert.throws(() => pickPrecision(dir, "q4"), (e: unknown) => {
      assert.ok(e instanceof MissingPrecision);
      assert.deepEqual([e.path, e.wanted, e.present], [model, "q4", ["fp32"]]);
      assert.equal(e.exitCode, 3);
      return true;
    });
  }));
