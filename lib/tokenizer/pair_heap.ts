/**
 * A binary max-heap of candidate symbol pairs for BPE merging, ordered as SentencePiece orders its
 * agenda: higher score first, then the leftmost pair. Pairs live in growable typed arrays, so
 * pushing one allocates nothing.
 * @module
 */

/** SentencePiece's agenda order: pair a comes out before pair b. */
function first(scoreA: number, leftA: number, scoreB: number, leftB: number): boolean {
  return scoreA > scoreB || (scoreA === scoreB && leftA < leftB);
}

/** Max-heap of (left, right, score, size) pairs; `pop` fills the `top*` fields. */
export class PairHeap {
  #left = new Int32Array(64);
  #right = new Int32Array(64);
  #size = new Int32Array(64);
  #score = new Float64Array(64);
  #count = 0;
  /** Left symbol index of the last popped pair. */
  topLeft = -1;
  /** Right symbol index of the last popped pair. */
  topRight = -1;
  /** Merged length of the last popped pair, used to spot pairs made stale by another merge. */
  topSize = 0;

  /** Number of queued pairs. */
  get length(): number {
    return this.#count;
  }

  #grow(): void {
    const n = this.#left.length * 2;
    const grow32 = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.#left = grow32(this.#left);
    this.#right = grow32(this.#right);
    this.#size = grow32(this.#size);
    const score = new Float64Array(n);
    score.set(this.#score);
    this.#score = score;
  }

  #put(i: number, left: number, right: number, score: number, size: number): void {
    this.#left[i] = left;
    this.#right[i] = right;
    this.#score[i] = score;
    this.#size[i] = size;
  }

  #move(from: number, to: number): void {
    this.#put(to, this.#left[from], this.#right[from], this.#score[from], this.#size[from]);
  }

  /** Adds the pair of symbols `left` and `right`, whose merged piece has `score` and `size`. */
  push(left: number, right: number, score: number, size: number): void {
    if (this.#count === this.#left.length) this.#grow();
    let i = this.#count++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!first(score, left, this.#score[parent], this.#left[parent])) break;
      this.#move(parent, i);
      i = parent;
    }
    this.#put(i, left, right, score, size);
  }

  /** Removes the best pair into `topLeft`/`topRight`/`topSize`; false when the heap is empty. */
  pop(): boolean {
    if (this.#count === 0) return false;
    this.topLeft = this.#left[0];
    this.topRight = this.#right[0];
    this.topSize = this.#size[0];
    const n = --this.#count;
    if (n === 0) return true;
    const left = this.#left[n];
    const right = this.#right[n];
    const score = this.#score[n];
    const size = this.#size[n];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && first(this.#score[r], this.#left[r], this.#score[l], this.#left[l])
        ? r
        : l;
      if (!first(this.#score[child], this.#left[child], score, left)) break;
      this.#move(child, i);
      i = child;
    }
    this.#put(i, left, right, score, size);
    return true;
  }
}
