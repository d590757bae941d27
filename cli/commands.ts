import type { Command } from "./command.ts";
import { notImplemented } from "./command.ts";
import { answerCommand } from "./answer.ts";
import { captionCommand } from "./caption.ts";
import { convertCommand } from "./convert.ts";
import { inspectCommand } from "./inspect.ts";

const modelFlags = `  --model DIR          converted ONNX model folder (or set PALIGEMMA_MODEL)
  --backend NAME       onnx (default) or webgpu
  --max-tokens N       stop after N generated tokens (default 64)
  --json               one JSON object per image per line on stdout (NDJSON)`;

/** Every subcommand, in the order the top-level help lists them. */
export const commands: readonly Command[] = [
  captionCommand,
  answerCommand,
  notImplemented(
    "detect",
    "find objects and their boxes",
    `Usage: pg detect <image...> <labels> --model DIR [options]

Finds objects ("cat ; dog" or repeated --label) and prints their boxes.

Options:
${modelFlags}
  --label NAME         a label to look for (repeatable)
  --convention NAME    big_vision (default) or hf-demo
  --expect-label NAME  exit 1 when no object with this label is found`,
  ),
  notImplemented(
    "segment",
    "find objects and their masks",
    `Usage: pg segment <image...> <label> --model DIR [options]

Finds objects and decodes their masks with the VQ-VAE decoder.

Options:
${modelFlags}
  --vae FILE           vae-oid.npz (default: vqvae_decoder.onnx in the model folder)
  --masks-dir DIR      write one PNG mask per object`,
  ),
  notImplemented(
    "bench",
    "measure load, prefill and decode speed",
    `Usage: pg bench --model DIR [options]

Measures load time, image encoding, prefill, time to first token and decode tokens/s.`,
  ),
  convertCommand,
  inspectCommand,
];
