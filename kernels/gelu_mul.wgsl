// gelu_mul (Gemma gated MLP): Y[r, c] = gelu_tanh(G[r*in_stride + gate_off + c])
//                                       * U[r*in_stride + up_off + c], Y is [rows, cols].
// G and U may be the same buffer (a fused [rows, 2*cols] gate|up projection: in_stride = 2*cols,
// gate_off = 0, up_off = cols) or two [rows, cols] buffers (in_stride = cols, offsets 0).
// Bindings: 0 G (read) · 1 U (read) · 2 Y (read_write, rows*cols) · 3 params (uniform).
// Workgroup: 256 threads, one output each.
// Dispatch: (x, y, 1) with x*y*256 >= rows*cols, x <= 65535.

struct Params {
  rows: u32,
  cols: u32,
  in_stride: u32,
  gate_off: u32,
  up_off: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read> U: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn gelu_tanh(x: f32) -> f32 {
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -10.0, 10.0);
  return 0.5 * x * (1.0 + tanh(u));
}

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let i = (wg.x + wg.y * nwg.x) * 256u + lid.x;
  if (i >= p.rows * p.cols) {
    return;
  }
  let r = i / p.cols;
  let c = i % p.cols;
  let src = r * p.in_stride + c;
  Y[i] = gelu_tanh(G[src + p.gate_off]) * U[src + p.up_off];
}
