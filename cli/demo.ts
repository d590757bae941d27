/**
 * `deno task demo`: converts the bundled tiny PaliGemma (random weights, so its words are noise) to
 * ONNX and runs caption, detect and segment on a bundled photo, writing everything to the folder
 * it names (out/demo, or $PG_DEMO_OUT).
 * @module
 */
import { join } from "node:path";
import { commands } from "./commands.ts";
import { dispatch } from "./run.ts";
import { usage } from "../main.ts";

const root = new URL("..", import.meta.url).pathname;
const fixtures = join(root, "tests", "fixtures");
const outDir = Deno.env.get("PG_DEMO_OUT") ?? join(root, "out", "demo");
const modelDir = join(outDir, "model");
const image = join(fixtures, "images", "chelsea.png");

/** Runs one CLI invocation in-process, echoing it to stderr; stops the demo on failure. */
async function step(args: string[]): Promise<void> {
  console.error(`\n$ pg ${args.join(" ")}`);
  const code = await dispatch(args, commands, usage(commands));
  if (code !== 0) Deno.exit(code);
}

if (import.meta.main) {
  await Deno.mkdir(outDir, { recursive: true });
  await Deno.remove(modelDir, { recursive: true }).catch(() => {});
  const vae = join(fixtures, "vqvae", "vae.npz");
  await step(["convert", join(fixtures, "models", "pg1-tiny", "hf"), modelDir, "--vae", vae]);
  await step(["caption", image, "--model", modelDir, "--max-tokens", "12"]);
  await step(["caption", image, "--model", modelDir, "--max-tokens", "12", "--json"]);
  const grammar = ["--constrained", "--max-tokens", "40"];
  await step([
    ...["detect", image, "cat ; remote", "--model", modelDir, ...grammar],
    ...["--overlay", join(outDir, "detect.png"), "--coco", join(outDir, "detect-coco.json")],
  ]);
  await step([
    ...["segment", image, "cat", "--model", modelDir, ...grammar, "--json"],
    ...["--overlay", join(outDir, "segment.png"), "--masks-dir", join(outDir, "masks")],
  ]);
  console.error(
    `\nThe model is a tiny random-weight test model: its words are noise, not a caption.`,
  );
  console.error(`Outputs (model, overlays, COCO file, masks) are in ${outDir}`);
}
