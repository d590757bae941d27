/**
 * Server throughput benchmark (a script, not a test): N clients at once against one `pg serve`,
 * beside N `pg` runs one after another that each load the model, as a script calling `pg` per
 * image does. Every run is a real `pg` process (`deno run main.ts …`), so process start, image
 * decoding and output are counted as a user pays them. Also shown: the server's start (load) and
 * the same N clients one after another (latency without batching), and the largest batch the
 * server ran.
 *
 *   deno run -A tests/bench/serve.ts [MODEL_DIR] [--clients 8] [--max-tokens 16]
 *     [--max-batch 8] [--batch-wait MS] [--dtype q8] [--threads N] [--skip-sequential-clients]
 *     [--fixture-tokenizer]
 *
 * Without MODEL_DIR the pg1-tiny fixture is converted into a temporary folder. With
 * `--fixture-tokenizer`, MODEL_DIR is run through a temporary view of it (links to its graphs)
 * with the pg1-tiny fixture's tokenizer and `image_token_index`: the synthetic full-size folders
 * (random weights, so only speed means anything) carry a tokenizer whose `<image>` id is past their
 * vocabulary. Prints a Markdown table for BENCHMARKS.md.
 * @module
 */

import { parseArgs } from "node:util";
import os from "node:os";
import { join } from "node:path";
import { convertFixture } from "../generate/fixture_models.ts";
import { FIXTURE_IMAGES } from "../cli/setup.ts";
import { runPg } from "../helpers/cli.ts";
import { health, startServer } from "../serve/server.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    clients: { type: "string", default: "8" },
    "max-tokens": { type: "string", default: "16" },
    "max-batch": { type: "string", default: "8" },
    "batch-wait": { type: "string", default: "5" },
    dtype: { type: "string" },
    threads: { type: "string" },
    "skip-sequential-clients": { type: "boolean" },
    "fixture-tokenizer": { type: "boolean" },
  },
});
const clients = Number(values.clients);
const tmp = await Deno.makeTempDir({ prefix: "pg-bench-serve-" });
let model = positionals[0];
if (model !== undefined && values["fixture-tokenizer"]) {
  const view = join(tmp, "view");
  const fixture = new URL("../fixtures/models/pg1-tiny/hf/", import.meta.url).pathname;
  await Deno.mkdir(view);
  for (const name of ["onnx", "preprocessor_config.json", "generation_config.json"]) {
    await Deno.symlink(join(model, name), join(view, name)).catch(() => {});
  }
  for (const name of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.copyFile(join(fixture, name), join(view, name));
  }
  const config = JSON.parse(await Deno.readTextFile(join(model, "config.json")));
  const tiny = JSON.parse(await Deno.readTextFile(join(fixture, "config.json")));
  config.image_token_index = tiny.image_token_index;
  await Deno.writeTextFile(join(view, "config.json"), JSON.stringify(config, null, 2));
  model = view;
}
if (model === undefined) {
  model = join(tmp, "pg1-tiny");
  await Deno.mkdir(model);
  await convertFixture("pg1-tiny", "hf", model);
}
const images = Array.from({ length: clients }, (_, i) => FIXTURE_IMAGES[i % FIXTURE_IMAGES.length]);
const modelFlags = [
  "--model",
  model,
  ...(values.dtype ? ["--dtype", values.dtype] : []),
  ...(values.threads ? ["--threads", values.threads] : []),
];
const common = ["--max-tokens", values["max-tokens"]!, ...modelFlags];
const caption = (image: string, env: Record<string, string> = {}) =>
  runPg(["caption", image, ...common], { env }).then((r) => {
    if (r.code !== 0) throw new Error(`pg caption ${image}: exit ${r.code}\n${r.stderr}`);
    return r.stdout;
  });
const seconds = (t0: number) => (performance.now() - t0) / 1000;
console.error(`bench: started ${new Date().toISOString()}`);

console.error(`bench: ${clients} sequential local runs`);
let t = performance.now();
const local: string[] = [];
for (const image of images) local.push(await caption(image));
const sequentialLocal = seconds(t);

console.error("bench: starting pg serve");
t = performance.now();
const server = await startServer([
  ...modelFlags,
  "--socket",
  join(tmp, "pg.sock"),
  "--max-batch",
  values["max-batch"]!,
  "--batch-wait",
  values["batch-wait"]!,
]);
const serverStart = seconds(t);
const env = { PG_SERVER: server.url };
let concurrent = 0;
let sequentialClients = 0;
let largest = 0;
try {
  console.error(`bench: ${clients} clients at once`);
  t = performance.now();
  const remote = await Promise.all(images.map((image) => caption(image, env)));
  concurrent = seconds(t);
  largest = (await health(server.url)).models[0].largest;
  const same = remote.every((out, i) => out === local[i]);
  if (!same) throw new Error("a client's output differs from the local run's");
  if (!values["skip-sequential-clients"]) {
    console.error(`bench: ${clients} clients one after another`);
    t = performance.now();
    for (const image of images) await caption(image, env);
    sequentialClients = seconds(t);
  }
} finally {
  await server.stop();
  await Deno.remove(tmp, { recursive: true });
}

const row = (what: string, s: number) =>
  `| ${what} | ${s.toFixed(1)} | ${(s / clients).toFixed(2)} | ${
    (sequentialLocal / s).toFixed(1)
  }x |`;
console.log(
  `model: ${model}; ${clients} images, --max-tokens ${values["max-tokens"]}, ` +
    `pg serve --max-batch ${values["max-batch"]} --batch-wait ${values["batch-wait"]}`,
);
console.log(`machine: ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`);
console.log("");
console.log("| run | wall s | s per image | vs local |");
console.log("| --- | --- | --- | --- |");
console.log(row(`${clients} local runs, one after another`, sequentialLocal));
console.log(row(`${clients} clients at once (largest batch ${largest})`, concurrent));
if (sequentialClients > 0) {
  console.log(row(`${clients} clients one after another`, sequentialClients));
}
console.log(`| server start (load) | ${serverStart.toFixed(1)} | | |`);
