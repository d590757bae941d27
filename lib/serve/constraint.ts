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

/** A logits mask for one row: `generated` is the row's tokens so far. */
export type RowConstraint = (generated: readonly number[], logits: Float32Array) => void;

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
  return (ids, logits) => grammar.mask(ids, logits);
}

/** Masks every logit but `eosId`'s, so that the row ends at this step (a cancelled row). */
export function forceEnd(logits: Float32Array, eosId: number): void {
  const keep = logits[eosId];
  logits.fill(-Infinity);
  logits[eosId] = Number.isFinite(keep) ? keep : 0;
}
