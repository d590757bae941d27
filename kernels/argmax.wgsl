// argmax: Out[r] = the smallest index of the largest value of X[r, :] (NaNs are ignored; an
// all-NaN row gives 0). X is [rows, n] row-major.
// Bindings: 0 X (read, rows*n) · 1 Out (read_write, u32, rows) · 2 params (uniform).
// Workgroup: 64 threads per row; each scans a strided slice, then a tree reduction.
// Dispatch: (x, y, 1) with x*y >= rows, x <= 65535.

struct Params {
  rows: u32,
  n: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> Out: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG = 64u;
const NONE = 0xffffffffu;
var<workgroup> bv: array<f32, 64>;
var<workgroup> bi: array<u32, 64>;

// True when (v, i) beats (bvv, bii): a larger value, or the same value at a smaller index.
fn better(v: f32, i: u32, bvv: f32, bii: u32) -> bool {
  if (i == NONE) {
    return false;
  }
  if (bii == NONE) {
    return true;
  }
  return v > bvv || (v == bvv && i < bii);
}

@compute @workgroup_size(64, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) {
    return;
  }
  let base = row * p.n;
  var best = 0.0;
  var bidx = NONE;
  for (var i = lid.x; i < p.n; i += WG) {
    let v = X[base + i];
    if (v == v && better(v, i, best, bidx)) { // v == v is false for NaN
      best = v;
      bidx = i;
    }
  }
  bv[lid.x] = best;
  bi[lid.x] = bidx;
  workgroupBarrier();
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (lid.x < off && better(bv[lid.x + off], bi[lid.x + off], bv[lid.x], bi[lid.x])) {
      bv[lid.x] = bv[lid.x + off];
      bi[lid.x] = bi[lid.x + off];
    }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    Out[row] = select(bi[0], 0u, bi[0] == NONE);
  }
}
