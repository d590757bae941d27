/**
 * Constrained decoding as data: which answer grammar a run asks for (detect or segment, and the
 * labels), so that it can travel in a request and be built beside the tokenizer that runs it.
 * @module
 */

import { AnswerGrammar } from "../detect/constrain.ts";
import type { AnswerMode } from "../detect/grammar.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** The answer grammar a run restricts generation to. */
export interface GrammarSpec {
  /** detect or segment. */
  readonly mode: AnswerMode;
  /** The labels looked for. */
  readonly labels: readonly string[];
}

/** The tokens one row may take next, as a bitmask over `vocab` ids; `generated` is its tokens so far. */
export type RowConstraint = (generated: readonly number[], vocab: number) => Uint32Array;

/**
 * The logits mask of `spec` for `tokenizer` (as `pg detect --constrained` builds it), with
 * `maxTokens` the budget asked for.
 */
export function grammarConstraint(
  spec: GrammarSpec,
  tokenizer: Tokenizer,
  eosIds: readonly number[],
  maxTokens: number,
): RowConstraint {
  const grammar = new AnswerGrammar({
    mode: spec.mode,
    labels: [...spec.labels],
    tokenizer,
    eosId: eosIds[0] ?? tokenizer.eosId,
    maxTokens,
  });
  return (ids, vocab) => grammar.bitmask(ids, vocab);
}

/** A bitmask over `vocab` ids allowing only `eosId`, so that the row ends at this step (a cancelled row). */
export function forceEnd(eosId: number, vocab: number): Uint32Array {
  const bits = new Uint32Array(Math.ceil(vocab / 32));
  bits[eosId >>> 5] |= 1 << (eosId & 31);
  return bits;
}
