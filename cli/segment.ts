/**
 * `segment`: find objects, decode their `<seg>` tokens with the VQ-VAE into masks and write them
 * (NDJSON with COCO RLE, PNG masks, overlays).
 * @module
 */

import type { Command } from "./command.ts";
import { MODEL_HELP, OUTPUT_FLAGS_HELP, runDetection } from "./detect.ts";
import { EXIT_HELP, RUN_FLAGS_HELP } from "./image_run.ts";

const HELP = `Usage: pg segment <image...> --label NAME --model MODEL [options]
       pg segment <image> <label> --model MODEL [options]

Finds objects named NAME, decodes each one's 16 <seg> tokens into a 64x64 mask with the
VQ-VAE decoder and pastes it into its box. Prints 'label x1,y1,x2,y2 score' per object
(score = mean probability of its loc and seg tokens at temperature 1). The decoder is
vqvae_decoder.onnx in the model folder ('pg convert --vae-only vae-oid.npz DIR' writes it) or
--vae. With several images, each line starts with the image path. The short form takes
exactly one image and one label; with --label every argument is an image.

  --label NAME         the label to look for
  --vae FILE           vae-oid.npz (its ONNX graph is built on the fly) or a
                       vqvae_decoder.onnx
  --masks-dir DIR      write one PNG per object (<image>_<n>_<label>.png, 255 inside)

${RUN_FLAGS_HELP}

Model and output:
${MODEL_HELP}
${OUTPUT_FLAGS_HELP}

${EXIT_HELP}

Examples:
  pg segment photo.jpg cat --model ~/models/pg2-448 --overlay out.png
  pg segment shots/ --label cat --masks-dir masks/ --json --output-dir results/
  pg segment - --label car --expect-label car --junit report.xml < paths.txt`;

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
