import { captionPrefix } from "../lib/prompt/tasks.ts";
import { UsageError } from "../lib/errors.ts";
import { type Command, parseFlags, stringFlag } from "./command.ts";
import { MODEL_FLAG_SPEC, MODEL_FLAGS_HELP, parseModelArgs } from "./model_args.ts";
import { loadAndRunText } from "./model_output.ts";

const HELP = `Usage: pg caption <image...> --model DIR [options]

Writes a caption for each image (prompt 'caption <lang>'). With several images, each line of
plain output starts with the image path.

Options:
${MODEL_FLAGS_HELP}
  --lang CODE          caption language (default en)`;

/** `caption`: describe images. */
export const captionCommand: Command = {
  name: "caption",
  summary: "describe images",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const started = performance.now();
    const { values, positionals } = parseFlags("caption", args, {
      ...MODEL_FLAG_SPEC,
      lang: { type: "string" },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (positionals.length === 0) {
      throw new UsageError("caption: expected at least one image (see 'caption --help')");
    }
    const opts = parseModelArgs("caption", values);
    const prompt = captionPrefix(stringFlag(values, "lang") ?? "en");
    const jobs = positionals.map((image) => ({ image, prompt }));
    return await loadAndRunText("caption", jobs, opts, started);
  },
};
