import { captionPrefix } from "../lib/prompt/tasks.ts";
import { type Command, parseFlags, stringFlag } from "./command.ts";
import { EXIT_HELP, parseRunFlags, RUN_FLAG_SPEC, RUN_FLAGS_HELP } from "./image_run.ts";
import { MODEL_FLAG_SPEC, MODEL_FLAGS_HELP, parseModelArgs } from "./model_args.ts";
import { runText, TEXT_CHECK_FLAG_SPEC, TEXT_CHECK_FLAGS_HELP } from "./model_output.ts";
import { writeOut } from "./stdout.ts";

const HELP = `Usage: pg caption <image...> --model MODEL [options]

Writes a caption for each image (prompt 'caption <lang>'). With several images, each line of
plain output starts with the image path.

${RUN_FLAGS_HELP}

${TEXT_CHECK_FLAGS_HELP}

Model and output:
${MODEL_FLAGS_HELP}
  --lang CODE          caption language (default en)

${EXIT_HELP}

Examples:
  pg caption photo.jpg --model ~/models/pg2-224
  find shots -name '*.png' | pg caption - --json --output-dir results/ > captions.ndjson
  pg caption shots/ -r --expect 'cat|kitten' --junit report.xml`;

/** `caption`: describe images. */
export const captionCommand: Command = {
  name: "caption",
  summary: "describe images",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseFlags("caption", args, {
      ...MODEL_FLAG_SPEC,
      ...RUN_FLAG_SPEC,
      ...TEXT_CHECK_FLAG_SPEC,
      lang: { type: "string" },
    });
    if (values.help) {
      writeOut(`${HELP}\n`);
      return 0;
    }
    const model = parseModelArgs("caption", values);
    const prompt = captionPrefix(stringFlag(values, "lang") ?? "en");
    const run = await parseRunFlags("caption", values, positionals);
    return await runText("caption", prompt, values, model, run);
  },
};
