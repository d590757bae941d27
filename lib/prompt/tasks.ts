/**
 * The PaliGemma task prefixes (big_vision / HF model card spelling). Raw prompts are used as they
 * are, without going through these helpers.
 * @module
 */
import { InvalidValue } from "../errors.ts";

/** A part of a task prompt. */
export type PromptPart =
  | "caption language"
  | "answer language"
  | "question"
  | "object name"
  | "object names";

/** A prompt part that is empty (after trimming), or `detect` given no object names at all. */
export class EmptyPromptPart extends InvalidValue {
  /** Creates the error for `part` ("object names": the list itself is empty). */
  constructor(readonly part: PromptPart) {
    super(
      part === "object names"
        ? "detect needs at least one object name"
        : `${part} must not be empty`,
    );
    this.name = "EmptyPromptPart";
  }
}

/** Trims `value` and refuses it when empty, naming the prompt part. */
function required(value: string, part: PromptPart): string {
  const v = value.trim();
  if (v === "") throw new EmptyPromptPart(part);
  return v;
}

/** `caption {lang}`, e.g. `caption en`. */
export function captionPrefix(lang = "en"): string {
  return `caption ${required(lang, "caption language")}`;
}

/** `answer {lang} {question}`, e.g. `answer en what is on the table?`. */
export function answerPrefix(question: string, lang = "en"): string {
  return `answer ${required(lang, "answer language")} ${required(question, "question")}`;
}

/** `detect {a} ; {b} ; …` for one or more object names. */
export function detectPrefix(objects: readonly string[]): string {
  if (objects.length === 0) throw new EmptyPromptPart("object names");
  return `detect ${objects.map((o) => required(o, "object name")).join(" ; ")}`;
}

/** `segment {x}` for one object name. */
export function segmentPrefix(object: string): string {
  return `segment ${required(object, "object name")}`;
}
