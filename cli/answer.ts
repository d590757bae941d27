import { answerPrefix } from "../lib/prompt/tasks.ts";
import { UsageError } from "../lib/errors.ts";
import { type Command, parseFlags, stringFlag } from "./command.ts";
import { MODEL_FLAG_SPEC, MODEL_FLAGS_HELP, parseModelArgs } from "./model_args.ts";
import { loadAndRunText } from "./model_output.ts";

const HELP = `Usage: pg answer <image> <question> --model DIR [options]

Answers a question about an image (prompt 'answer <lang> <question>'). Quote the question;
unquoted words after the image are joined with spaces.

Options:
${MODEL_FLAGS_HELP}
  --lang CODE          answer language (default en)`;

/** `answer`: visual question answering on one image. */
export const answerCommand: Command = {
  name: "answer",
  summary: "answer a question about an image",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const started = performance.now();
    const { values, positionals } = parseFlags("answer", args, {
      ...MODEL_FLAG_SPEC,
      lang: { type: "string" },
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    if (positionals.length < 2) {
      throw new UsageError("answer: expected <image> <question> (see 'answer --help')");
    }
    const [image, ...words] = positionals;
    const opts = parseModelArgs("answer", values);
    const prompt = answerPrefix(words.join(" "), stringFlag(values, "lang") ?? "en");
    return await loadAndRunText("answer", [{ image, prompt }], opts, started);
  },
};
