import { answerPrefix } from "../lib/prompt/tasks.ts";
import { UsageError } from "../lib/errors.ts";
import { type Command, parseFlags, stringFlag } from "./command.ts";
import { EXIT_HELP, parseRunFlags, RUN_FLAG_SPEC, RUN_FLAGS_HELP } from "./image_run.ts";
import { looksLikeImage } from "./inputs.ts";
import { MODEL_FLAG_SPEC, MODEL_FLAGS_HELP, parseModelArgs } from "./model_args.ts";
import { runText, TEXT_CHECK_FLAG_SPEC, TEXT_CHECK_FLAGS_HELP } from "./model_output.ts";
import { writeOut } from "./stdout.ts";

const HELP = `Usage: pg answer <image...> --question Q --model MODEL [options]
       pg answer <image> <question> --model MODEL [options]

Answers a question about each image (prompt 'answer <lang> <question>'). The short form takes
exactly one image and one question; with --question (-q) every argument is an image.

  -q, --question Q     the question asked of every image

${RUN_FLAGS_HELP}

${TEXT_CHECK_FLAGS_HELP}

Model and output:
${MODEL_FLAGS_HELP}
  --lang CODE          answer language (default en)

${EXIT_HELP}

Examples:
  pg answer photo.jpg "what is on the table?"
  pg answer shots/*.png -q "is there a cat?" --expect '^yes' --junit cats.xml
  pg answer - -q "how many people?" --json < paths.txt`;

/** Splits positionals into images and the question, refusing anything ambiguous. */
function imagesAndQuestion(
  positionals: readonly string[],
  flag: string | undefined,
): { images: string[]; question: string } {
  if (flag !== undefined) {
    if (flag.trim() === "") throw new UsageError("--question is empty");
    return { images: [...positionals], question: flag };
  }
  if (positionals.length !== 2) {
    throw new UsageError(
      `answer: expected <image> <question>, or images and --question Q; got ${positionals.length} ` +
        "argument(s) and no --question (see 'pg answer --help')",
    );
  }
  const [image, question] = positionals;
  if (looksLikeImage(question)) {
    throw new UsageError(
      `answer: '${question}' looks like an image, not a question; ` +
        "give the question with --question Q",
    );
  }
  return { images: [image], question };
}

/** `answer`: visual question answering. */
export const answerCommand: Command = {
  name: "answer",
  summary: "answer a question about images",
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values, positionals } = parseFlags("answer", args, {
      ...MODEL_FLAG_SPEC,
      ...RUN_FLAG_SPEC,
      ...TEXT_CHECK_FLAG_SPEC,
      question: { type: "string", short: "q" },
      lang: { type: "string" },
    });
    if (values.help) {
      writeOut(`${HELP}\n`);
      return 0;
    }
    const { images, question } = imagesAndQuestion(positionals, stringFlag(values, "question"));
    const model = parseModelArgs("answer", values);
    const prompt = answerPrefix(question, stringFlag(values, "lang") ?? "en");
    const run = await parseRunFlags("answer", values, images);
    return await runText("answer", prompt, values, model, run);
  },
};
