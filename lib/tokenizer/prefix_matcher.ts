/**
 * Longest-prefix matching of a fixed set of strings (SentencePiece's user-defined symbols), with a
 * trie over UTF-16 code units.
 * @module
 */

interface TrieNode {
  readonly children: Map<number, TrieNode>;
  terminal: boolean;
}

function newNode(): TrieNode {
  return { children: new Map(), terminal: false };
}

/** Finds the longest of a set of strings that starts at a given position of a text. */
export class PrefixMatcher {
  readonly #root: TrieNode = newNode();
  #count = 0;

  /** Builds a matcher over `symbols` (empty strings are ignored). */
  constructor(symbols: Iterable<string>) {
    for (const symbol of symbols) {
      if (symbol.length === 0) continue;
      let node = this.#root;
      for (let i = 0; i < symbol.length; i++) {
        const unit = symbol.charCodeAt(i);
        let next = node.children.get(unit);
        if (next === undefined) {
          next = newNode();
          node.children.set(unit, next);
        }
        node = next;
      }
      if (!node.terminal) this.#count++;
      node.terminal = true;
    }
  }

  /** Number of distinct symbols. */
  get size(): number {
    return this.#count;
  }

  /** Length (in UTF-16 code units) of the longest symbol starting at `pos`, or 0 if none does. */
  match(text: string, pos: number): number {
    let node: TrieNode | undefined = this.#root;
    let best = 0;
    for (let i = pos; i < text.length; i++) {
      node = node.children.get(text.charCodeAt(i));
      if (node === undefined) break;
      if (node.terminal) best = i + 1 - pos;
    }
    return best;
  }
}
