/**
 * `segment`: find objects, decode their `<seg>` tokens with the VQ-VAE into masks and write them
 * (NDJSON with COCO RLE, PNG masks, overlays).
 * @module
 */

import { MODEL_FLAGS_HELP } from "./model_args.ts";
import type { Command } from "./command.ts";
import { OUTPUT_FLAGS_HELP, runDetection } from "./detect.ts";

const HELP = `Usage: pg segment <image...> <label> --model DIR [options]

Finds objects named <label> (or --label), decodes each one's 16 <seg> tokens into a 64x64 mask
with the VQ-VAE decoder and pastes it into its box. Prints 'label x1,y1,x2,y2 score' per object
(score = mean probability of its loc and seg tokens at temperature 1). The decoder is
vqvae_decoder.onnx in the model folder ('pg convert --vae-only vae-oid.npz DIR' writes it) or
--vae. With several images, each line starts with the image path.

Options:
${MODEL_FLAGS_HELP.split("\n  --json")[0]}
  --label NAME         the label to look for (then every argument is an image)
  --vae FILE           vae-oid.npz (its ONNX graph is built on the fly) or a
                       vqvae_decoder.onnx
  --masks-dir DIR      write one PNG per object (<image>_<n>_<label>.png, 255 inside)
${OUTPUT_FLAGS_HELP}`;

/** `segment`: find objects and their masks. */
export const segmentCommand: Command = {
  name: "segment",
  summary: "find objects and their masks",
  help: HELP,
  run: (args: string[]) =>
    runDetection("segment", args, HELP, {
      vae: { type: "string" },
      "masks-dir": { type: "string" },
    }),
};
