/**
 * Constrained decoding for `--constrained`: a token-level automaton over the answer grammar.
 * Each object is 4 loc tokens in valid order (y_min, x_min ≤ 1022; y_max > y_min, x_max > x_min),
 * then 16 seg tokens when segmenting, then one of the labels (as `encode(" " + label)`), then
 * either the separator (`encode(" ; ")`) and another object, or end of sequence. Given the token
 * budget, an object only starts when all of it and the end of sequence still fit, so the answer
 * never ends in a cut-off object. The state is recomputed from the tokens generated so far, so one
 * grammar serves every row of a batch.
 * @module
 */

import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { type AnswerMode, LOCS_PER_OBJECT, SEGS_PER_OBJECT } from "./grammar.ts";

/** What may come next: id ranges [start, end) and single ids. */
export interface AllowedTokens {
  /** Half-open id ranges. */
  readonly ranges: readonly (readonly [number, number])[];
  /** Single ids. */
  readonly ids: readonly number[];
}

/** Options of `AnswerGrammar`. */
export interface GrammarOptions {
  /** detect (boxes) or segment (boxes and 16 seg tokens). */
  readonly mode: AnswerMode;
  /** The labels named in the prompt (at least one). */
  readonly labels: readonly string[];
  /** The model's tokenizer (gives loc/seg ids and label tokens). */
  readonly tokenizer: Tokenizer;
  /** The end-of-sequence id to allow after a complete object. */
  readonly eosId: number;
  /**
   * Most tokens the loop may generate, the end of sequence included (`--max-tokens`; default
   * unlimited). An object (or a separator and an object) is only begun when it fits whole, with
   * one token left for the end of sequence.
   */
  readonly maxTokens?: number;
}

type State =
  | { phase: "loc"; locs: number[] }
  | { phase: "seg"; count: number }
  | { phase: "label"; consumed: number[] }
  | { phase: "sep"; count: number }
  | { phase: "invalid" };

const LOC_MAX = 1023;

/** The answer grammar as a logits mask. */
export class AnswerGrammar {
  private readonly labelSeqs: number[][];
  private readonly sep: number[];
  private readonly locBase: number;
  private readonly segBase: number;
  /** Tokens of the shortest object plus the end of sequence after it. */
  private readonly minObject: number;

  /** Tokenizes the labels and the separator; throws RangeError without loc/seg tokens. */
  constructor(private readonly opts: GrammarOptions) {
    const t = opts.tokenizer;
    if (t.locBase < 0 || (opts.mode === "segment" && t.segBase < 0)) {
      throw new RangeError("the tokenizer has no <locNNNN>/<segNNN> tokens");
    }
    if (opts.labels.length === 0) throw new RangeError("constrained decoding needs a label");
    this.locBase = t.locBase;
    this.segBase = t.segBase;
    this.labelSeqs = opts.labels.map((l) => t.encode(` ${l.trim()}`));
    if (this.labelSeqs.some((s) => s.length === 0)) throw new RangeError("empty label");
    this.sep = t.encode(" ; ");
    const minLabel = Math.min(...this.labelSeqs.map((l) => l.length));
    const segs = opts.mode === "segment" ? SEGS_PER_OBJECT : 0;
    this.minObject = LOCS_PER_OBJECT + segs + minLabel + 1;
  }

  private isLoc(id: number): boolean {
    return id >= this.locBase && id <= this.locBase + LOC_MAX;
  }

  private isSeg(id: number): boolean {
    return id >= this.segBase && id < this.segBase + 128;
  }

  /**
   * Label tokens that may follow `consumed` (only of labels that end within `room` more tokens),
   * and whether `consumed` is a whole label.
   */
  private labelNext(
    consumed: readonly number[],
    room = Infinity,
  ): { next: Set<number>; complete: boolean } {
    const next = new Set<number>();
    let complete = false;
    for (const seq of this.labelSeqs) {
      if (seq.length < consumed.length) continue;
      if (!consumed.every((id, i) => seq[i] === id)) continue;
      if (seq.length === consumed.length) complete = true;
      else if (seq.length - consumed.length <= room) next.add(seq[consumed.length]);
    }
    return { next, complete };
  }

  /** Walks the generated tokens through the automaton. */
  private state(generated: readonly number[]): State {
    let s: Exclude<State, { phase: "invalid" }> = { phase: "loc", locs: [] };
    for (const id of generated) {
      switch (s.phase) {
        case "loc":
          if (!this.isLoc(id)) return { phase: "invalid" };
          s.locs.push(id - this.locBase);
          if (s.locs.length === LOCS_PER_OBJECT) {
            s = this.opts.mode === "segment"
              ? { phase: "seg", count: 0 }
              : { phase: "label", consumed: [] };
          }
          break;
        case "seg":
          if (!this.isSeg(id)) return { phase: "invalid" };
          s.count++;
          if (s.count === SEGS_PER_OBJECT) s = { phase: "label", consumed: [] };
          break;
        case "label": {
          const { next, complete } = this.labelNext(s.consumed);
          if (next.has(id)) s.consumed.push(id);
          else if (complete && id === this.sep[0]) {
            s = this.sep.length === 1 ? { phase: "loc", locs: [] } : { phase: "sep", count: 1 };
          } else return { phase: "invalid" };
          break;
        }
        case "sep":
          if (id !== this.sep[s.count]) return { phase: "invalid" };
          s.count++;
          if (s.count === this.sep.length) s = { phase: "loc", locs: [] };
          break;
      }
    }
    return s;
  }

  /**
   * The tokens allowed after `generated` (only end of sequence once off the grammar, or when no
   * whole object fits in what is left of the budget).
   */
  allowed(generated: readonly number[]): AllowedTokens {
    const s = this.state(generated);
    // Tokens still to come, this one included.
    const left = (this.opts.maxTokens ?? Infinity) - generated.length;
    const eos: AllowedTokens = { ranges: [], ids: [this.opts.eosId] };
    const loc = (lo: number, hi: number): AllowedTokens => ({
      ranges: [[this.locBase + lo, this.locBase + hi + 1]],
      ids: [],
    });
    switch (s.phase) {
      case "loc": {
        const k = s.locs.length;
        if (k === 0 && left < this.minObject) return eos;
        if (k < 2) return loc(0, LOC_MAX - 1);
        return loc(s.locs[k - 2] + 1, LOC_MAX);
      }
      case "seg":
        return { ranges: [[this.segBase, this.segBase + 128]], ids: [] };
      case "label": {
        // A longer label must leave one token for the end of sequence.
        const { next, complete } = this.labelNext(s.consumed, left - 1);
        const ids = [...next];
        if (complete) {
          ids.push(this.opts.eosId);
          if (left >= this.sep.length + this.minObject) ids.push(this.sep[0]);
        }
        return { ranges: [], ids };
      }
      case "sep":
        return { ranges: [], ids: [this.sep[s.count]] };
      case "invalid":
        return eos;
    }
  }

  /**
   * The tokens allowed after `generated` as a bitmask over `vocab` ids (bit `id % 32` of word
   * `id >> 5`): what a backend applies on its side of the bus.
   */
  bitmask(generated: readonly number[], vocab: number): Uint32Array {
    const a = this.allowed(generated);
    const bits = new Uint32Array(Math.ceil(vocab / 32));
    const set = (i: number) => {
      if (i >= 0 && i < vocab) bits[i >>> 5] |= 1 << (i & 31);
    };
    for (const [lo, hi] of a.ranges) for (let i = lo; i < hi; i++) set(i);
    for (const i of a.ids) set(i);
    return bits;
  }

  /** Sets every logit not allowed after `generated` to -Infinity (allowed ones are untouched). */
  mask(generated: readonly number[], logits: Float32Array): void {
    const a = this.allowed(generated);
    const keep = new Map<number, number>();
    for (const [lo, hi] of a.ranges) {
      for (let i = lo; i < hi && i < logits.length; i++) keep.set(i, logits[i]);
    }
    for (const i of a.ids) if (i < logits.length) keep.set(i, logits[i]);
    logits.fill(-Infinity);
    for (const [i, v] of keep) logits[i] = v;
  }
}
