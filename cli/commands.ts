import type { Command } from "./command.ts";
import { answerCommand } from "./answer.ts";
import { benchCommand } from "./bench.ts";
import { cacheCommand } from "./cache.ts";
import { captionCommand } from "./caption.ts";
import { convertCommand } from "./convert.ts";
import { detectCommand } from "./detect.ts";
import { inspectCommand } from "./inspect.ts";
import { segmentCommand } from "./segment.ts";
import { serveCommand } from "./serve.ts";

/** Every subcommand, in the order the top-level help lists them. */
export const commands: readonly Command[] = [
  captionCommand,
  answerCommand,
  detectCommand,
  segmentCommand,
  serveCommand,
  benchCommand,
  convertCommand,
  cacheCommand,
  inspectCommand,
];
