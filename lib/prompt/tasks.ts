/**
 * The PaliGemma task prefixes (big_vision / HF model card spelling). Raw prompts are used as they
 * are, without going through these helpers.
 * @module
 */
import { UsageError } from "../errors.ts";

/** Trims `value` and refuses it when empty, naming the flag/argument it came from. */
function required(value: string, what: string): string {
  const v = value.trim();
  if (v === "") throw new UsageError(`${what} must not be empty`);
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
  if (objects.length === 0) throw new UsageError("detect needs at least one object name");
  return `detect ${objects.map((o) => required(o, "object name")).join(" ; ")}`;
}

/** `segment {x}` for one object name. */
export function segmentPrefix(object: string): string {
  return `segment ${required(object, "object name")}`;
}
