/**
 * Incremental detokenisation for streaming: text is released only once it is final, i.e. not
 * ending in a partial UTF-8 character (U+FFFD) that later tokens may complete.
 * @module
 */

import type { Tokenizer } from "../tokenizer/tokenizer.ts";

/** Turns a growing list of token ids into the new text each token adds. */
export class TextStreamer {
  private readonly ids: number[] = [];
  private emitted = "";

  /** Streams the ids of one sequence through `tokenizer` (special tokens skipped). */
  constructor(private readonly tokenizer: Tokenizer) {}

  /** Adds one token; returns the text that became final (possibly ""). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.tokenizer.decode(this.ids, true);
    if (text.endsWith("\uFFFD") || !text.startsWith(this.emitted)) return "";
    const fresh = text.slice(this.emitted.length);
    this.emitted = text;
    return fresh;
  }

  /** Whatever is left once the sequence is over (a trailing partial character included). */
  flush(): string {
    const text = this.tokenizer.decode(this.ids, true);
    const fresh = text.startsWith(this.emitted) ? text.slice(this.emitted.length) : "";
    this.emitted = text;
    return fresh;
  }
}
