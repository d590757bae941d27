// kv_append_f16: cache[b, h, past + t, d] = half(src[b, t, h, d]) into an f16 KV cache
// [B, H, capacity, D] of IEEE halves packed two per u32 (element e in word e / 2, the even
// element in the low half), rounding to nearest even (pack2x16float). D must be even, so each
// thread writes one whole word (dims d, d + 1) and no two threads share a word.
// Source strides (sb, st, sh) give its layout ("bthd" or "bhtd"); dest strides in elements.
// Bindings: 0 src (read, f32) · 1 cache (read_write, u32) · 2 params (uniform).
// Dispatch: (x, y, 1) with x*y*256 >= B*T*H*D/2, x <= 65535.

struct Params {
  B: u32,
  T: u32,
  H: u32,
  D: u32,
  past: u32,
  sb: u32,
  st: u32,
  sh: u32,
  cb: u32,
  ch: u32,
  cs: u32,
  _p0: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> cache: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  let half_d = p.D / 2u;
  if (i >= p.B * p.T * p.H * half_d) {
    return;
  }
  let d = 2u * (i % half_d);
  let h = (i / half_d) % p.H;
  let t = (i / (half_d * p.H)) % p.T;
  let b = i / (half_d * p.H * p.T);
  let s = b * p.sb + t * p.st + h * p.sh + d;
  let e = b * p.cb + h * p.ch + (p.past + t) * p.cs + d;
  cache[e / 2u] = pack2x16float(vec2<f32>(src[s], src[s + 1u]));
}
