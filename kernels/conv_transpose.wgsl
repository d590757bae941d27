// conv_transpose: ConvTranspose2d (PyTorch semantics), square kernel k, stride s, padding pad
// (4×4 stride 2 pad 1 in the VQ-VAE, n -> 2n), gathered per output:
//   Y[n, oy, ox, o] = bias[o] + Σ X[n, iy, ix, i] * W[i, o, ky, kx]
//   over oy = iy*s - pad + ky, ox = ix*s - pad + kx, optionally followed by ReLU.
// Activations are NHWC; W is in PyTorch ConvTranspose2d layout [I, O, k, k].
// Output size OH = (H - 1) s - 2 pad + k, OW likewise.
// Bindings: 0 X (read, N*H*W*I) · 1 W (read, I*O*k*k) · 2 bias (read, O) ·
//           3 Y (read_write, N*OH*OW*O) · 4 params (uniform).
// Workgroup: 256 threads, one output value each.
// Dispatch: (x, y, 1) with x*y*256 >= N*OH*OW*O, x <= 65535.

struct Params {
  N: u32,
  H: u32,
  W: u32,
  I: u32,
  O: u32,
  k: u32,
  stride: u32,
  pad: u32,
  relu: u32,
  OH: u32,
  OW: u32,
  _p0: u32,
}

@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Wt: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(
  @builtin(workgroup_id) wg: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
) {
  let g = (wg.x + wg.y * nwg.x) * 256u + lid.x;
  if (g >= p.N * p.OH * p.OW * p.O) {
    return;
  }
  let o = g % p.O;
  let ox = (g / p.O) % p.OW;
  let oy = (g / (p.O * p.OW)) % p.OH;
  let n = g / (p.O * p.OW * p.OH);
  let kk = p.k * p.k;
  let s = i32(p.stride);
  var acc = bias[o];
  for (var ky = 0u; ky < p.k; ky++) {
    let ty = i32(oy + p.pad) - i32(ky);
    if (ty < 0 || ty % s != 0 || ty / s >= i32(p.H)) {
      continue;
    }
    let iy = u32(ty / s);
    for (var kx = 0u; kx < p.k; kx++) {
      let tx = i32(ox + p.pad) - i32(kx);
      if (tx < 0 || tx % s != 0 || tx / s >= i32(p.W)) {
        continue;
      }
      let ix = u32(tx / s);
      let xb = ((n * p.H + iy) * p.W + ix) * p.I;
      let wb = o * kk + ky * p.k + kx;
      let wstride = p.O * kk;
      for (var i = 0u; i < p.I; i++) {
        acc = fma(X[xb + i], Wt[wb + i * wstride], acc);
      }
    }
  }
  if (p.relu != 0u) {
    acc = max(acc, 0.0);
  }
  Y[g] = acc;
}
