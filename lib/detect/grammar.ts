/**
 * The detect/segment answer grammar. The answer is split at every `;`; each piece is trimmed and
 * empty pieces are dropped. A piece without `<locNNNN>` is text; text before its first loc token is
 * text too. An object is a run of adjacent `<locNNNN>` tokens (y_min, x_min, y_max, x_max), optional
 * whitespace, a run of adjacent `<segNNN>` tokens (possibly empty), then the label: the text up to
 * the next `<locNNNN>` (which starts another object) or the end of the piece, trimmed. Malformed
 * objects are skipped with a reason; never throws on any input string.
 * @module
 */

/** `detect` reads boxes (0 or 16 seg tokens); `segment` requires 16 seg tokens. */
export type AnswerMode = "detect" | "segment";

/** Number of loc tokens of one object. */
export const LOCS_PER_OBJECT = 4;
/** Number of seg tokens of one segmented object. */
export const SEGS_PER_OBJECT = 16;

/**
 * Why an object was skipped, checked in this order: not exactly 4 loc tokens; a loc value above
 * 1023; not 16 seg tokens (segment) or neither 0 nor 16 (detect); a seg value above 127;
 * y_max <= y_min; x_max <= x_min.
 */
export type SkipReason =
  | "loc_count"
  | "loc_range"
  | "seg_count"
  | "seg_range"
  | "y_order"
  | "x_order";

/** One well-formed object as it appears in the answer. */
export interface ParsedObject {
  /** The label, trimmed (may be empty). */
  readonly label: string;
  /** Loc values 0..1023 in answer order: y_min, x_min, y_max, x_max. */
  readonly loc: readonly [number, number, number, number];
  /** The 16 seg codes 0..127 in segment mode, else null. */
  readonly seg: readonly number[] | null;
  /**
   * Indices of this object's loc and seg tokens among all `<locNNNN>`/`<segNNN>` literals of the
   * answer (see `tokenLiterals`), for scoring.
   */
  readonly tokenOrdinals: readonly number[];
}

/** A piece of the answer that looked like an object but was not well formed. */
export interface SkippedPiece {
  /** The raw text of the object (tokens and label), trimmed. */
  readonly raw: string;
  /** Why it was skipped. */
  readonly reason: SkipReason;
}

/** The parse of one answer. */
export interface ParsedAnswer {
  /** Well-formed objects in answer order. */
  readonly objects: ParsedObject[];
  /** Malformed objects in answer order. */
  readonly skipped: SkippedPiece[];
  /** Other text (outside objects), trimmed, non-empty, in order. */
  readonly texts: string[];
}

const LITERAL_RE = /<loc\d{4}>|<seg\d{3}>/g;
const LOC_RE = /<loc(\d{4})>/g;
const LOC_RUN_RE = /(?:<loc\d{4}>)+/y;
const SEG_RUN_RE = /\s*((?:<seg\d{3}>)+)/y;

/** Every `<locNNNN>` and `<segNNN>` literal of `text`, in order. */
export function tokenLiterals(text: string): string[] {
  return [...text.matchAll(LITERAL_RE)].map((m) => m[0]);
}

function values(run: string, digits: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < run.length; i += digits + 5) {
    out.push(Number(run.slice(i + 4, i + 4 + digits)));
  }
  return out;
}

function check(locs: number[], segs: number[], mode: AnswerMode): SkipReason | null {
  if (locs.length !== LOCS_PER_OBJECT) return "loc_count";
  if (locs.some((v) => v > 1023)) return "loc_range";
  const segOk = segs.length === SEGS_PER_OBJECT || (mode === "detect" && segs.length === 0);
  if (!segOk) return "seg_count";
  if (segs.some((v) => v > 127)) return "seg_range";
  if (locs[2] <= locs[0]) return "y_order";
  if (locs[3] <= locs[1]) return "x_order";
  return null;
}

/** Number of loc/seg literals in `text` before `end`. */
function literalsBefore(text: string, end: number): number {
  return tokenLiterals(text.slice(0, end)).length;
}

/** Parses one answer under `mode`; never throws. */
export function parseAnswer(answer: string, mode: AnswerMode): ParsedAnswer {
  const objects: ParsedObject[] = [];
  const skipped: SkippedPiece[] = [];
  const texts: string[] = [];
  let offset = 0;
  for (const rawPiece of answer.split(";")) {
    const pieceStart = offset;
    offset += rawPiece.length + 1;
    const piece = rawPiece.trim();
    if (piece === "") continue;
    const lead = rawPiece.length - rawPiece.trimStart().length;
    const base = literalsBefore(answer, pieceStart + lead);
    const starts = [...piece.matchAll(LOC_RE)].map((m) => m.index ?? 0);
    if (starts.length === 0) {
      texts.push(piece);
      continue;
    }
    const pre = piece.slice(0, starts[0]).trim();
    if (pre !== "") texts.push(pre);
    let pos = starts[0];
    while (pos < piece.length) {
      const start = pos;
      LOC_RUN_RE.lastIndex = pos;
      const locRun = LOC_RUN_RE.exec(piece)?.[0] ?? "";
      pos += locRun.length;
      SEG_RUN_RE.lastIndex = pos;
      const segMatch = SEG_RUN_RE.exec(piece);
      const segRun = segMatch?.[1] ?? "";
      if (segMatch) pos += segMatch[0].length;
      const tokensEnd = pos;
      LOC_RE.lastIndex = pos;
      const next = LOC_RE.exec(piece);
      const end = next ? next.index : piece.length;
      LOC_RE.lastIndex = 0;
      const label = piece.slice(tokensEnd, end).trim();
      pos = end;
      const locs = values(locRun, 4);
      const segs = values(segRun, 3);
      const reason = check(locs, segs, mode);
      if (reason !== null) {
        skipped.push({ raw: piece.slice(start, end).trim(), reason });
        continue;
      }
      const first = base + literalsBefore(piece, start);
      const count = locs.length + segs.length;
      objects.push({
        label,
        loc: locs as [number, number, number, number],
        seg: mode === "segment" ? segs : null,
        tokenOrdinals: Array.from({ length: count }, (_, i) => first + i),
      });
    }
  }
  return { objects, skipped, texts };
}
