// flash_attention: O[b, h, t, :] = Σ_j softmax_j(s_j) · V[b, kvh, j, :] over the visible keys j,
//   s_j = cap(q · K[b, kvh, j, :] · scale), cap(s) = tanh(s / c) · c when c > 0,
//   kvh = h / G (G = Hq / Hkv query heads per KV head: MQA / GQA).
// Key j (a cache position) is visible to the query at cache position qpos = P + t when
//   first_b <= j < P + T, (j < prefix_b or j <= qpos), and (window = 0 or qpos - j < window):
//   prefix_b >= P + T is full (prefix-LM prefill) attention, prefix_b = 0 is causal; first_b
//   skips left padding. With has_rows = 1, (first_b, prefix_b) = L[2b], L[2b + 1]; otherwise
//   (0, prefix_all).
// FlashAttention-style: a workgroup takes BR query rows sharing one KV head (rows ρ = g·T + t of
//   the G heads of that KV head), walks the keys BC at a time through workgroup memory (the K
//   tile, then the V tile in the same array) with an online softmax, and never writes scores.
// Split-KV (nsplit > 1, workgroup z = split): split z takes keys [z·split_len, (z+1)·split_len)
//   and writes its unnormalised output to Part[z, row, :] and (running max, sum) to ML[z, row]
//   (row = (b·Hq + h)·T + t); attn_combine.wgsl merges them. nsplit = 1 writes O directly.
// Layouts by element strides: q[b,h,t,d] = Q[b*q_sb + h*q_sh + t*q_st + d] (O likewise with o_*),
//   k[b,kvh,j,d] = K[b*k_sb + kvh*k_sh + j*k_ss + d] (V likewise).
// K and V hold f32 bits, or with KV_F16 = 1 IEEE halves two per u32 (the f16 KV cache of
//   kv_append_f16.wgsl; element e in word e / 2, the even element in the low half).
// Bindings: 0 Q · 1 K · 2 V · 3 L (u32) · 4 O (read_write) · 5 Part (read_write) ·
//   6 ML (read_write) · 7 params (uniform). Absent buffers: any 1-element buffer.
// Overrides: TPQ threads per query row (each owns head dims lane + i·TPQ, D <= 8·TPQ), BR rows,
//   BC keys per tile, DMAX >= D (a multiple of TPQ). Workgroup BR·TPQ threads, workgroup
//   memory 4·(BR·DMAX + BC·(DMAX + 1) + BR·BC) bytes.
// Dispatch: (ceil(G·T / BR), B·Hkv, nsplit).

override TPQ: u32 = 32u;
override BR: u32 = 8u;
override BC: u32 = 16u;
override DMAX: u32 = 256u;
override KV_F16: u32 = 0u;

struct Params {
  B: u32,
  Hq: u32,
  Hkv: u32,
  T: u32,
  D: u32,
  P: u32,
  window: u32,
  has_rows: u32,
  prefix_all: u32,
  nsplit: u32,
  split_len: u32,
  q_sb: u32,
  q_sh: u32,
  q_st: u32,
  k_sb: u32,
  k_sh: u32,
  k_ss: u32,
  o_sb: u32,
  o_sh: u32,
  o_st: u32,
  scale: f32,
  softcap: f32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> Q: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<u32>;
@group(0) @binding(2) var<storage, read> V: array<u32>;
@group(0) @binding(3) var<storage, read> L: array<u32>;
@group(0) @binding(4) var<storage, read_write> O: array<f32>;
@group(0) @binding(5) var<storage, read_write> Part: array<f32>;
@group(0) @binding(6) var<storage, read_write> ML: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

const NEG = -3.0e38; // "no key" sentinel, below any finite score
const NEG_HALF = -1.5e38;
override KS: u32 = DMAX + 1u; // padded row stride of the K / V tile (no bank conflicts on K rows)

var<workgroup> qs: array<f32, BR * DMAX>;

// Element e of the K (is_v = false) or V cache: f32 bits, or halves two per word (KV_F16 = 1).
fn kv_at(is_v: bool, e: u32) -> f32 {
  if (KV_F16 != 0u) {
    var w: u32;
    if (is_v) {
      w = V[e / 2u];
    } else {
      w = K[e / 2u];
    }
    return unpack2x16float(w)[e % 2u];
  }
  if (is_v) {
    return bitcast<f32>(V[e]);
  }
  return bitcast<f32>(K[e]);
}
var<workgroup> kv: array<f32, BC * KS>;
var<workgroup> ss: array<f32, BR * BC>;

@compute @workgroup_size(BR * TPQ, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let G = p.Hq / p.Hkv;
  let b = wg.y / p.Hkv;
  let kvh = wg.y % p.Hkv;
  let rows = G * p.T;
  let rho0 = wg.x * BR;
  let nthreads = BR * TPQ;
  let S = p.P + p.T;

  var first = 0u;
  var prefix = p.prefix_all;
  if (p.has_rows != 0u) {
    first = L[2u * b];
    prefix = L[2u * b + 1u];
  }

  // Key range of the whole tile of rows, intersected with this split.
  var qmin = p.P + p.T;
  var qmax = 0u;
  for (var r = 0u; r < BR; r++) {
    let rho = rho0 + r;
    if (rho < rows) {
      let qp = p.P + rho % p.T;
      qmin = min(qmin, qp);
      qmax = max(qmax, qp);
    }
  }
  var lo = first;
  if (p.window > 0u && qmin + 1u > p.window) {
    lo = max(lo, qmin + 1u - p.window);
  }
  var hi = min(S, max(prefix, qmax + 1u));
  lo = max(lo, wg.z * p.split_len);
  hi = min(hi, (wg.z + 1u) * p.split_len);

  // Queries of the tile.
  for (var e = li; e < BR * DMAX; e += nthreads) {
    let r = e / DMAX;
    let d = e % DMAX;
    let rho = rho0 + r;
    var v = 0.0;
    if (rho < rows && d < p.D) {
      let h = kvh * G + rho / p.T;
      let t = rho % p.T;
      v = Q[b * p.q_sb + h * p.q_sh + t * p.q_st + d];
    }
    qs[e] = v;
  }

  let my_r = li / TPQ;
  let lane = li % TPQ;
  let my_rho = rho0 + my_r;
  let dpt = DMAX / TPQ;
  var acc: array<f32, 8>;
  for (var i = 0u; i < 8u; i++) {
    acc[i] = 0.0;
  }
  var m = NEG;
  var l = 0.0;
  let kb = b * p.k_sb + kvh * p.k_sh;

  for (var c0 = lo; c0 < hi; c0 += BC) {
    workgroupBarrier(); // previous tile's readers are done with kv and ss
    for (var e = li; e < BC * DMAX; e += nthreads) {
      let c = e / DMAX;
      let d = e % DMAX;
      let j = c0 + c;
      var v = 0.0;
      if (j < hi && d < p.D) {
        v = kv_at(false, kb + j * p.k_ss + d);
      }
      kv[c * KS + d] = v;
    }
    workgroupBarrier();
    for (var e = li; e < BR * BC; e += nthreads) {
      let r = e / BC;
      let c = e % BC;
      let rho = rho0 + r;
      let j = c0 + c;
      let qp = p.P + rho % p.T;
      var s = NEG;
      let visible = rho < rows && j < hi && (j < prefix || j <= qp) &&
        (p.window == 0u || qp - j < p.window);
      if (visible) {
        var dotv = 0.0;
        for (var d = 0u; d < p.D; d++) {
          dotv = fma(qs[r * DMAX + d], kv[c * KS + d], dotv);
        }
        s = dotv * p.scale;
        if (p.softcap > 0.0) {
          s = tanh(clamp(s / p.softcap, -10.0, 10.0)) * p.softcap;
        }
      }
      ss[e] = s;
    }
    workgroupBarrier();
    for (var e = li; e < BC * DMAX; e += nthreads) {
      let c = e / DMAX;
      let d = e % DMAX;
      let j = c0 + c;
      var v = 0.0;
      if (j < hi && d < p.D) {
        v = kv_at(true, kb + j * p.k_ss + d);
      }
      kv[c * KS + d] = v;
    }
    workgroupBarrier();
    var cmax = NEG;
    for (var c = 0u; c < BC; c++) {
      cmax = max(cmax, ss[my_r * BC + c]);
    }
    let mnew = max(m, cmax);
    let corr = exp(m - mnew);
    l *= corr;
    for (var i = 0u; i < dpt; i++) {
      acc[i] *= corr;
    }
    for (var c = 0u; c < BC; c++) {
      let s = ss[my_r * BC + c];
      if (s > NEG_HALF) {
        let pj = exp(s - mnew);
        l += pj;
        for (var i = 0u; i < dpt; i++) {
          acc[i] = fma(pj, kv[c * KS + lane + i * TPQ], acc[i]);
        }
      }
    }
    m = mnew;
  }

  if (my_rho >= rows) {
    return;
  }
  let h = kvh * G + my_rho / p.T;
  let t = my_rho % p.T;
  if (p.nsplit == 1u) {
    let ob = b * p.o_sb + h * p.o_sh + t * p.o_st;
    var inv = 0.0;
    if (l > 0.0) {
      inv = 1.0 / l;
    }
    for (var i = 0u; i < dpt; i++) {
      let d = lane + i * TPQ;
      if (d < p.D) {
        O[ob + d] = acc[i] * inv;
      }
    }
  } else {
    let row = (b * p.Hq + h) * p.T + t;
    let nrows = p.B * p.Hq * p.T;
    let pb = (wg.z * nrows + row) * p.D;
    for (var i = 0u; i < dpt; i++) {
      let d = lane + i * TPQ;
      if (d < p.D) {
        Part[pb + d] = acc[i];
      }
    }
    if (lane == 0u) {
      ML[2u * (wg.z * nrows + row)] = m;
      ML[2u * (wg.z * nrows + row) + 1u] = l;
    }
  }
}
