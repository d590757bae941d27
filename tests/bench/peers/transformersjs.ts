/**
 * Peer benchmark (a script, not a test): transformers.js 4.3.1 on one of our converted folders,
 * timed as `pg bench` times pg: load (processor + model; cold after dropping the files from the
 * page cache, then warm), time to first token and decode speed of a greedy caption of a grey image
 * ("caption en", no stop at <eos>). One JSON object on stdout.
 *
 *   deno run -A tests/bench/peers/transformersjs.ts DIR --dtype q8 [--tokens 16] [--loads 2] [--cold]
 * @module
 */

import { parseArgs } from "node:util";
import { basename, dirname } from "node:path";
import {
  AutoProcessor,
  BaseStreamer,
  env,
  PaliGemmaForConditionalGeneration,
  RawImage,
} from "@huggingface/transformers";
import { openModelDir } from "../../../lib/backend/model_dir.ts";
import type { Precision } from "../../../lib/model/precision.ts";
import { TOKENIZER_CACHE } from "../../../lib/tokenizer/cache.ts";
import { evictFromPageCache, modelFiles, readFiles } from "../../../cli/page_cache.ts";

/** Records when each `put` came: the prompt first, then one per generated token. */
class Clock extends BaseStreamer {
  times: number[] = [];
  override put(_value: bigint[][]): void {
    this.times.push(performance.now());
  }
  override end(): void {}
}

const median = (xs: number[]) => xs.toSorted((a, b) => a - b)[xs.length >> 1];

async function main() {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      dtype: { type: "string", default: "q8" },
      tokens: { type: "string", default: "16" },
      loads: { type: "string", default: "2" },
      cold: { type: "boolean", default: false },
    },
  });
  const dir = positionals[0];
  if (!dir) throw new Error("usage: transformersjs.ts DIR --dtype q8 [--tokens 16] [--cold]");
  const dtype = values.dtype as Precision;
  const tokens = Number(values.tokens);
  const md = await openModelDir(dir);
  const files = modelFiles(md, dtype).filter((f) => !f.endsWith(TOKENIZER_CACHE));
  let readCold: number | null = null;
  if (values.cold) {
    evictFromPageCache(files);
    readCold = (await readFiles(files)).ms;
  }
  const warm = await readFiles(files);
  if (values.cold) evictFromPageCache(files);

  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dirname(dir);
  const name = basename(dir);
  const loadsMs: number[] = [];
  let processor;
  let model;
  for (let i = 0; i < Number(values.loads); i++) {
    if (model) await model.dispose();
    const t = performance.now();
    processor = await AutoProcessor.from_pretrained(name, { local_files_only: true });
    model = await PaliGemmaForConditionalGeneration.from_pretrained(name, {
      dtype,
      device: "cpu",
      local_files_only: true,
    });
    loadsMs.push(performance.now() - t);
    console.error(`transformers.js: load ${i + 1}: ${loadsMs.at(-1)!.toFixed(0)} ms`);
  }
  const s = md.config.vision.imageSize;
  const image = new RawImage(new Uint8ClampedArray(s * s * 3).fill(128), s, s, 3);
  const inputs = await processor!(image, "caption en");
  const run = async () => {
    const clock = new Clock();
    const t0 = performance.now();
    await model!.generate({
      ...inputs,
      max_new_tokens: tokens,
      min_new_tokens: tokens,
      do_sample: false,
      streamer: clock,
    });
    const first = clock.times[1];
    const last = clock.times.at(-1)!;
    return { ttft: first - t0, rate: (clock.times.length - 2) / ((last - first) / 1000) };
  };
  await run(); // warm-up, as pg bench's default
  const r = await run();
  await model!.dispose();
  console.log(JSON.stringify({
    system: "transformers.js 4.3.1",
    model: dir,
    dtype,
    prompt_tokens: (inputs.input_ids as { dims: number[] }).dims[1],
    tokens,
    read_bytes: warm.bytes,
    read_cold_ms: readCold,
    read_warm_ms: warm.ms,
    load_cold_ms: values.cold ? loadsMs[0] : null,
    load_warm_ms: median(values.cold ? loadsMs.slice(1) : loadsMs),
    loads_ms: loadsMs,
    ttft_ms: r.ttft,
    decode_tokens_per_s: r.rate,
  }));
}

if (import.meta.main) await main();
