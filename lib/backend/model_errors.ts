/**
 * What can be wrong with a path given as a converted model folder, as typed errors carrying the
 * facts in fields. Their messages are complete but name no command or flag; cli/wording.ts words
 * them in the command line's terms.
 * @module
 */

import { InputError } from "../errors.ts";
import type { Precision } from "../model/precision.ts";

/** A checkpoint (HF or big_vision) given where a converted model folder was expected. */
export class NotConverted extends InputError {
  /** `what` says what `path` is instead, e.g. "a big_vision checkpoint". */
  constructor(readonly path: string, readonly what: string) {
    super(`${path}: is ${what}, not a converted model folder; convert it first`);
    this.name = "NotConverted";
  }
}

/** Why a path is not a model folder (when it is no checkpoint either). */
export type NotAModelFolderReason = "file" | "no onnx folder";

/** A plain file, or a folder without `onnx/`, given where a converted model folder was expected. */
export class NotAModelFolder extends InputError {
  /** Creates the error for `path`. */
  constructor(readonly path: string, readonly reason: NotAModelFolderReason) {
    super(
      reason === "file"
        ? `${path}: is a file, not a converted model folder`
        : `${path}: no onnx/ folder, so not a converted model folder`,
    );
    this.name = "NotAModelFolder";
  }
}

/** A model folder whose `onnx/` lacks the three graphs at every precision. */
export class MissingGraphs extends InputError {
  /** Creates the error for the folder `path`. */
  constructor(readonly path: string) {
    super(
      `${path}: onnx/ lacks a complete set of vision_encoder, embed_tokens and ` +
        `decoder_model_merged graphs of any precision; convert the checkpoint again`,
    );
    this.name = "MissingGraphs";
  }
}

/** A model folder without the graphs of the precision asked for. */
export class MissingPrecision extends InputError {
  /** `present`: the precisions the folder does hold, best first. */
  constructor(
    readonly path: string,
    readonly wanted: Precision,
    readonly present: readonly Precision[],
  ) {
    super(`${path}: has no ${wanted} graphs (present: ${present.join(", ")})`);
    this.name = "MissingPrecision";
  }
}

/** A graph written by an older converter: it lacks inputs the runtime feeds. */
export class OutdatedGraph extends InputError {
  /** `graph`: the graph's name (e.g. decoder_model_merged); `missing`: its absent inputs. */
  constructor(readonly graph: string, readonly missing: readonly string[]) {
    super(
      `${graph}: missing input(s) ${missing.join(", ")}; convert the checkpoint again`,
    );
    this.name = "OutdatedGraph";
  }
}
