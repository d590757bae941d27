// sample: picks one token per row of logits X [rows, V] on the device, in two passes (PASS 0
// per chunk, PASS 1 one workgroup per row), as lib/generate/sampling.ts does on the CPU given
// the same uniform draw U[row] in [0, 1):
//   - greedy (greedy = 1): the first index of the largest allowed logit;
//   - temperature only (top_k = 0, top_p >= 1): x = logit · inv_temp, walking the allowed ids in
//     id order until the running sum of e^(x - max) passes U · Σ e^(x - max);
//   - top-k and / or top-p: the top_k (or, for top-p alone, up to CAP) largest allowed x found
//     by a 4 × 8-bit radix select, sorted (value desc, id asc), softmax over them (top-k) or over
//     the whole row (top-p alone), the nucleus cut where the running probability reaches top_p,
//     then the walk in that order until U · (kept mass) is passed.
// Allowed: with has_mask = 1, bit (id % 32) of Mask[row · mask_words + id / 32] must be set
// (a grammar bitmask); masked ids are never picked (logits at -inf).
// Output Out[row · 4 ..]: token id, bitcast<u32>(p) with p = softmax(X[row, :])[token] at
// temperature 1 before the mask (the score detect / segment use), flags (1 = the candidates did
// not fit CAP, or the nucleus needs more than CAP candidates: sample on the CPU instead; 2 = no
// id allowed, token 0), candidate count.
// Bindings: 0 X (read) · 1 Mask (read, u32) · 2 U (read) · 3 Part (read_write, [rows, chunks,
// 6]) · 4 Out (read_write, u32) · 5 params (uniform). Absent Mask: any 1-element buffer.
// Dispatch: PASS 0 (chunks, rows, 1) with chunk = params.chunk ids each; PASS 1 (rows, 1, 1).

override PASS: u32 = 0u;
override WG: u32 = 256u;
override CAP: u32 = 1024u;

struct Params {
  rows: u32,
  V: u32,
  chunk: u32,
  nchunks: u32,
  has_mask: u32,
  mask_words: u32,
  top_k: u32,
  greedy: u32,
  inv_temp: f32,
  top_p: f32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Mask: array<u32>;
@group(0) @binding(2) var<storage, read> U: array<f32>;
@group(0) @binding(3) var<storage, read_write> Part: array<f32>;
@group(0) @binding(4) var<storage, read_write> Out: array<u32>;
@group(0) @binding(5) var<uniform> p: Params;

const NEG = -3.0e38;
const NONE = 0xffffffffu;

var<workgroup> r_m: array<f32, WG>;
var<workgroup> r_s: array<f32, WG>;
var<workgroup> r_x: array<f32, WG>;
var<workgroup> r_t: array<f32, WG>;
var<workgroup> r_i: array<u32, WG>;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> cv: array<f32, CAP>;
var<workgroup> ci: array<u32, CAP>;
var<workgroup> sh_u: array<u32, 4>;
var<workgroup> sh_f: array<f32, 2>;
var<workgroup> counter: atomic<u32>;
var<workgroup> last: atomic<u32>;

fn allowed(row: u32, i: u32) -> bool {
  if (p.has_mask == 0u) {
    return true;
  }
  return ((Mask[row * p.mask_words + i / 32u] >> (i % 32u)) & 1u) != 0u;
}

// Merges (m2, s2) into the running (max, Σ e^(v - max)) pair (m, s).
fn lse_merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let m = max(a.x, b.x);
  return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
  if (i == NONE) {
    return false;
  }
  return bi == NONE || v > bv || (v == bv && i < bi);
}

// Order-preserving u32 key of an f32 (larger float, larger key).
fn fkey(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Tree reduction of the five r_* arrays into index 0.
fn reduce_stats(t: u32) {
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (t < off) {
      let a = lse_merge(vec2<f32>(r_m[t], r_s[t]), vec2<f32>(r_m[t + off], r_s[t + off]));
      r_m[t] = a.x;
      r_s[t] = a.y;
      let bx = r_x[t + off];
      let bi = r_i[t + off];
      let c = lse_merge(vec2<f32>(r_x[t], r_t[t]), vec2<f32>(bx, r_t[t + off]));
      if (better(bx, bi, r_x[t], r_i[t])) {
        r_i[t] = bi;
      }
      r_x[t] = c.x;
      r_t[t] = c.y;
    }
    workgroupBarrier();
  }
}

fn chunk_pass(c: u32, row: u32, t: u32) {
  let lo = c * p.chunk;
  let hi = min(p.V, lo + p.chunk);
  var raw = vec2<f32>(NEG, 0.0);
  var tmp = vec2<f32>(NEG, 0.0);
  var bi = NONE;
  var n = 0u;
  for (var i = lo + t; i < hi; i += WG) {
    let l = X[row * p.V + i];
    raw = lse_merge(raw, vec2<f32>(l, 1.0));
    if (allowed(row, i)) {
      let x = l * p.inv_temp;
      if (better(x, i, tmp.x, bi)) {
        bi = i;
      }
      if (p.greedy != 0u) {
        tmp.x = max(tmp.x, x); // greedy needs no sum at the temperature
      } else {
        tmp = lse_merge(tmp, vec2<f32>(x, 1.0));
      }
      n += 1u;
    }
  }
  r_m[t] = raw.x;
  r_s[t] = raw.y;
  r_x[t] = tmp.x;
  r_t[t] = tmp.y;
  r_i[t] = bi;
  atomicAdd(&counter, n);
  workgroupBarrier();
  reduce_stats(t);
  if (t == 0u) {
    let o = (row * p.nchunks + c) * 6u;
    Part[o] = r_m[0];
    Part[o + 1u] = r_s[0];
    Part[o + 2u] = r_x[0];
    Part[o + 3u] = r_t[0];
    Part[o + 4u] = bitcast<f32>(r_i[0]);
    Part[o + 5u] = bitcast<f32>(atomicLoad(&counter));
  }
}

// Walks the allowed ids of one row in id order (temperature-only sampling); returns the token.
fn walk_ids(row: u32, t: u32, mx: f32, total: f32) -> u32 {
  // Chunk holding the goal (thread 0, sequentially over the chunk sums).
  if (t == 0u) {
    var goal = U[row] * total;
    var found = NONE;
    var lastnz = 0u;
    for (var c = 0u; c < p.nchunks; c++) {
      let o = (row * p.nchunks + c) * 6u;
      let s = Part[o + 3u] * exp(Part[o + 2u] - mx);
      if (s > 0.0) {
        lastnz = c;
      }
      if (found == NONE) {
        if (goal < s) {
          found = c;
        } else {
          goal -= s;
        }
      }
    }
    if (found == NONE) {
      // Rounding left the goal at or past the total: the last id with non-zero probability.
      sh_u[0] = lastnz;
      sh_f[0] = 3.0e38;
    } else {
      sh_u[0] = found;
      sh_f[0] = goal;
    }
    atomicStore(&last, 0u);
    atomicStore(&counter, NONE);
  }
  let c = workgroupUniformLoad(&sh_u[0]);
  let goal = sh_f[0];
  let lo = c * p.chunk;
  let hi = min(p.V, lo + p.chunk);
  let per = (p.chunk + WG - 1u) / WG;
  let a = min(hi, lo + t * per);
  let b = min(hi, a + per);
  var s = 0.0;
  var lastnz = NONE;
  for (var i = a; i < b; i++) {
    if (allowed(row, i)) {
      let e = exp(X[row * p.V + i] * p.inv_temp - mx);
      s += e;
      if (e > 0.0) {
        lastnz = i;
      }
    }
  }
  if (lastnz != NONE) {
    atomicMax(&last, lastnz + 1u);
  }
  // Inclusive prefix sums of the slice sums (Hillis-Steele).
  r_s[t] = s;
  workgroupBarrier();
  for (var off = 1u; off < WG; off <<= 1u) {
    var v = r_s[t];
    if (t >= off) {
      v += r_s[t - off];
    }
    workgroupBarrier();
    r_s[t] = v;
    workgroupBarrier();
  }
  let incl = r_s[t];
  let excl = incl - s;
  if (goal >= excl && goal < incl) {
    var rem = goal - excl;
    var pick = NONE;
    for (var i = a; i < b; i++) {
      if (allowed(row, i)) {
        let e = exp(X[row * p.V + i] * p.inv_temp - mx);
        if (e > 0.0) {
          pick = i;
        }
        rem -= e;
        if (rem < 0.0) {
          break;
        }
      }
    }
    atomicMin(&counter, pick);
  }
  workgroupBarrier();
  let got = atomicLoad(&counter);
  if (got != NONE) {
    return got;
  }
  return max(atomicLoad(&last), 1u) - 1u;
}

// Top-k / top-p: returns the token, or NONE with Out flags set by the caller on overflow.
fn top_candidates(row: u32, t: u32, kq: u32) -> u32 {
  // Radix select of the kq-th largest key among the allowed x.
  var prefix = 0u;
  var known = 0u;
  var remaining = kq;
  for (var step = 0u; step < 4u; step++) {
    let shift = 24u - 8u * step;
    atomicStore(&hist[t % 256u], 0u);
    for (var j = t + WG; j < 256u; j += WG) {
      atomicStore(&hist[j], 0u);
    }
    workgroupBarrier();
    for (var i = t; i < p.V; i += WG) {
      if (allowed(row, i)) {
        let key = fkey(X[row * p.V + i] * p.inv_temp);
        if ((key & known) == prefix) {
          atomicAdd(&hist[(key >> shift) & 255u], 1u);
        }
      }
    }
    workgroupBarrier();
    if (t == 0u) {
      var cum = 0u;
      var bin = 0u;
      for (var b = 255i; b >= 0i; b--) {
        let h = atomicLoad(&hist[u32(b)]);
        if (cum + h >= remaining) {
          bin = u32(b);
          break;
        }
        cum += h;
      }
      sh_u[1] = bin;
      sh_u[2] = remaining - cum;
    }
    let bin = workgroupUniformLoad(&sh_u[1]);
    remaining = sh_u[2];
    prefix |= bin << shift;
    known |= 255u << shift;
  }
  // Gather every allowed id with key >= the threshold (ties are cut after the sort).
  if (t == 0u) {
    atomicStore(&counter, 0u);
  }
  for (var j = t; j < CAP; j += WG) {
    cv[j] = NEG;
    ci[j] = NONE;
  }
  workgroupBarrier();
  for (var i = t; i < p.V; i += WG) {
    if (allowed(row, i)) {
      let x = X[row * p.V + i] * p.inv_temp;
      if (fkey(x) >= prefix) {
        let slot = atomicAdd(&counter, 1u);
        if (slot < CAP) {
          cv[slot] = x;
          ci[slot] = i;
        }
      }
    }
  }
  let total = workgroupUniformLoad(&counter);
  if (total > CAP) {
    return NONE;
  }
  // Bitonic sort: value desc, id asc.
  for (var k = 2u; k <= CAP; k <<= 1u) {
    for (var j = k >> 1u; j > 0u; j >>= 1u) {
      for (var i = t; i < CAP; i += WG) {
        let l = i ^ j;
        if (l > i) {
          let a_after = cv[i] < cv[l] || (cv[i] == cv[l] && ci[i] > ci[l]);
          let up = (i & k) == 0u;
          if (a_after == up) {
            let tv = cv[i];
            cv[i] = cv[l];
            cv[l] = tv;
            let ti = ci[i];
            ci[i] = ci[l];
            ci[l] = ti;
          }
        }
      }
      workgroupBarrier();
    }
  }
  return 0u;
}

@compute @workgroup_size(WG, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_index) t: u32,
) {
  if (PASS == 0u) {
    if (t == 0u) {
      atomicStore(&counter, 0u);
    }
    workgroupBarrier();
    chunk_pass(wg.x, wg.y, t);
    return;
  }
  let row = wg.x;
  // Combine the chunk statistics.
  var raw = vec2<f32>(NEG, 0.0);
  var tmp = vec2<f32>(NEG, 0.0);
  var bi = NONE;
  var n = 0u;
  for (var c = t; c < p.nchunks; c += WG) {
    let o = (row * p.nchunks + c) * 6u;
    raw = lse_merge(raw, vec2<f32>(Part[o], Part[o + 1u]));
    let ci_ = bitcast<u32>(Part[o + 4u]);
    if (better(Part[o + 2u], ci_, tmp.x, bi)) {
      bi = ci_;
    }
    tmp = lse_merge(tmp, vec2<f32>(Part[o + 2u], Part[o + 3u]));
    n += bitcast<u32>(Part[o + 5u]);
  }
  r_m[t] = raw.x;
  r_s[t] = raw.y;
  r_x[t] = tmp.x;
  r_t[t] = tmp.y;
  r_i[t] = bi;
  if (t == 0u) {
    atomicStore(&counter, 0u);
  }
  workgroupBarrier();
  atomicAdd(&counter, n);
  reduce_stats(t);
  let M = r_m[0];
  let S = r_s[0];
  let MX = r_x[0];
  let SX = r_t[0];
  let gidx = r_i[0];
  let nallowed = workgroupUniformLoad(&counter);
  workgroupBarrier();
  var tok = 0u;
  var flags = 0u;
  var count = nallowed;
  if (nallowed == 0u) {
    flags = 2u;
  } else if (p.greedy != 0u) {
    tok = gidx;
  } else if (p.top_k == 0u && p.top_p >= 1.0) {
    tok = walk_ids(row, t, MX, SX);
  } else {
    var kq = min(CAP, nallowed);
    if (p.top_k > 0u) {
      kq = min(p.top_k, nallowed);
    }
    count = kq;
    if (kq > CAP || top_candidates(row, t, kq) == NONE) {
      flags = 1u;
    } else if (t == 0u) {
      // Probabilities of the kq best, the nucleus cut, then the walk.
      var base = SX;
      var ref_ = MX;
      if (p.top_k > 0u) {
        base = 0.0;
        ref_ = cv[0];
        for (var i = 0u; i < kq; i++) {
          base += exp(cv[i] - ref_);
        }
      }
      var keep = kq;
      if (p.top_p < 1.0) {
        var cum = 0.0;
        keep = 0u;
        while (keep < kq && (keep == 0u || cum < p.top_p)) {
          cum += exp(cv[keep] - ref_) / base;
          keep++;
        }
        if (cum < p.top_p && p.top_k == 0u && nallowed > kq) {
          flags = 1u; // the nucleus reaches past the CAP candidates
        }
      }
      var mass = 0.0;
      for (var i = 0u; i < keep; i++) {
        mass += exp(cv[i] - ref_) / base;
      }
      var u = U[row] * mass;
      var pick = NONE;
      for (var i = 0u; i < keep; i++) {
        u -= exp(cv[i] - ref_) / base;
        if (u < 0.0) {
          pick = i;
          break;
        }
      }
      if (pick == NONE) {
        pick = 0u;
        for (var i = keep; i > 0u; i--) {
          if (exp(cv[i - 1u] - ref_) > 0.0) {
            pick = i - 1u;
            break;
          }
        }
      }
      tok = ci[pick];
    }
  }
  if (t == 0u) {
    let prob = exp(X[row * p.V + tok] - M) / S;
    Out[row * 4u] = tok;
    Out[row * 4u + 1u] = bitcast<u32>(prob);
    Out[row * 4u + 2u] = flags;
    Out[row * 4u + 3u] = count;
  }
}
