"""Plain numpy (float64) forward of a PaliGemma tiny model, directly on big_vision npz parameters.

Written from shared/docs/model-reference.md (einsum shapes of big_vision). `var` selects deliberate
mistakes for the sensitivity assertions.
"""
import numpy as np

VARIANTS = ["none", "no_softcap", "final_softcap_on", "query_scale_head_dim", "interleaved_rope", "causal_prefix",
            "rmsnorm_w", "positions_from_0"]


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def layer_norm(x, s, b, eps=1e-6):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * s + b


def rms_norm(x, w, var, eps=1e-6):
    y = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
    return y * (w if var == "rmsnorm_w" else (1.0 + w))


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def vision(p, px, cfg):
    """px: (3,S,S) in [-1,1]. Returns zimg (T, D) = head(encoder_norm(tokens)) (never scaled)."""
    P = cfg["patch"]
    x = np.asarray(px, np.float64).transpose(1, 2, 0)  # HWC
    g = x.shape[0] // P
    patches = x.reshape(g, P, g, P, 3).transpose(0, 2, 1, 3, 4).reshape(g * g, P * P * 3)
    k = p["img/embedding/kernel"].reshape(P * P * 3, -1)
    h = patches @ k + p["img/embedding/bias"] + p["img/pos_embedding"][0]
    pre = "img/Transformer/encoderblock/"
    L = p[pre + "LayerNorm_0/scale"].shape[0]
    for i in range(L):
        a = pre + "MultiHeadDotProductAttention_0/"
        y = layer_norm(h, p[pre + "LayerNorm_0/scale"][i], p[pre + "LayerNorm_0/bias"][i])
        q = np.einsum("td,dnh->tnh", y, p[a + "query/kernel"][i]) + p[a + "query/bias"][i]
        kk = np.einsum("td,dnh->tnh", y, p[a + "key/kernel"][i]) + p[a + "key/bias"][i]
        v = np.einsum("td,dnh->tnh", y, p[a + "value/kernel"][i]) + p[a + "value/bias"][i]
        hd = q.shape[-1]
        w = softmax(np.einsum("tnh,snh->nts", q, kk) / np.sqrt(hd))
        o = np.einsum("nts,snh->tnh", w, v)
        h = h + np.einsum("tnh,nhd->td", o, p[a + "out/kernel"][i]) + p[a + "out/bias"][i]
        y = layer_norm(h, p[pre + "LayerNorm_1/scale"][i], p[pre + "LayerNorm_1/bias"][i])
        m = pre + "MlpBlock_0/"
        y = gelu_tanh(y @ p[m + "Dense_0/kernel"][i] + p[m + "Dense_0/bias"][i])
        h = h + y @ p[m + "Dense_1/kernel"][i] + p[m + "Dense_1/bias"][i]
    h = layer_norm(h, p["img/Transformer/encoder_norm/scale"], p["img/Transformer/encoder_norm/bias"])
    return h @ p["img/head/kernel"] + p["img/head/bias"]


def rope(x, pos, var, theta=10000.0):
    """x: (T, n, H); rotate-half (split halves) as in BV/HF; 'interleaved_rope' pairs (2i, 2i+1)."""
    H = x.shape[-1]
    ts = theta ** (2.0 * np.arange(H // 2) / H)
    ang = pos[:, None].astype(np.float64) / ts[None, :]  # (T, H/2)
    s, c = np.sin(ang)[:, None, :], np.cos(ang)[:, None, :]
    if var == "interleaved_rope":
        x1, x2 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x1 * c - x2 * s
        out[..., 1::2] = x2 * c + x1 * s
        return out
    x1, x2 = x[..., : H // 2], x[..., H // 2:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], -1)


def llm(p, emb, pos, mask, cfg, var="none"):
    """emb: (T,D) input embeddings (text already x sqrt(D)); pos: (T,); mask: (T,T) bool (query, key)."""
    g2 = cfg["gemma2"]
    x = emb
    L = p["llm/layers/pre_attention_norm/scale"].shape[0]
    qs = cfg["query_pre_attn_scalar"] if g2 else cfg["head_dim"]
    if var == "query_scale_head_dim":
        qs = cfg["head_dim"]
    acap = cfg.get("attn_softcap") if var != "no_softcap" else None
    # transformers 4.57 PaliGemmaForConditionalGeneration computes lm_head itself and does NOT apply
    # text_config.final_logit_softcapping (Gemma2ForCausalLM would); big_vision does. Default = HF.
    fcap = cfg.get("final_softcap") if var == "final_softcap_on" else None
    for i in range(L):
        y = rms_norm(x, p["llm/layers/pre_attention_norm/scale"][i], var)
        q = np.einsum("td,ndh->tnh", y, p["llm/layers/attn/q_einsum/w"][i])
        kv = p["llm/layers/attn/kv_einsum/w"][i]
        k = np.einsum("td,kdh->tkh", y, kv[0])
        v = np.einsum("td,kdh->tkh", y, kv[1])
        q, k = rope(q, pos, var), rope(k, pos, var)
        q = q * qs ** -0.5
        N, K = q.shape[1], k.shape[1]
        kr = np.repeat(k, N // K, axis=1)
        vr = np.repeat(v, N // K, axis=1)
        lg = np.einsum("tnh,snh->nts", q, kr)
        if acap:
            lg = np.tanh(lg / acap) * acap
        lg = np.where(mask[None], lg, -2.3819763e38)
        w = softmax(lg)
        o = np.einsum("nts,snh->tnh", w, vr)
        a = np.einsum("tnh,nhd->td", o, p["llm/layers/attn/attn_vec_einsum/w"][i])
        if g2:
            a = rms_norm(a, p["llm/layers/post_attention_norm/scale"][i], var)
        x = x + a
        y = rms_norm(x, p["llm/layers/pre_ffw_norm/scale"][i], var)
        gt = p["llm/layers/mlp/gating_einsum"][i]
        y = gelu_tanh(y @ gt[0]) * (y @ gt[1])
        y = y @ p["llm/layers/mlp/linear"][i]
        if g2:
            y = rms_norm(y, p["llm/layers/post_ffw_norm/scale"][i], var)
        x = x + y
    x = rms_norm(x, p["llm/final_norm/scale"], var)
    logits = x @ p["llm/embedder/input_embedding"].T
    if fcap:
        logits = np.tanh(logits / fcap) * fcap
    return logits


def embed(p, ids, zimg, image_id, D):
    E = p["llm/embedder/input_embedding"]
    x = np.zeros((len(ids), D))
    j = 0
    for t, tok in enumerate(ids):
        if tok == image_id:
            x[t] = zimg[j]
            j += 1
        else:
            x[t] = E[tok] * np.sqrt(D)
    assert j == len(zimg)
    return x


def prefix_mask(T, n_prefix, valid, var="none"):
    """Full attention over the prefix (first n_prefix tokens), causal after; keys must be valid."""
    i = np.arange(T)
    causal = i[None, :] <= i[:, None]
    if var == "causal_prefix":
        m = causal
    else:
        m = causal | ((i[None, :] < n_prefix) & (i[:, None] < n_prefix))
    return m & valid[None, :]


def forward(p, cfg, ids, px, n_prefix, valid=None, pos=None, var="none"):
    ids = np.asarray(ids)
    T = len(ids)
    valid = np.ones(T, bool) if valid is None else valid
    if pos is None:
        pos = np.cumsum(valid) - (1 if var == "positions_from_0" else 0)  # 1-indexed (HF)
    elif var == "positions_from_0":
        pos = pos - 1
    zimg = vision(p, px, cfg)
    x = embed(p, ids, zimg, cfg["image_id"], cfg["hidden"])
    return llm(p, x, pos, prefix_mask(T, n_prefix, valid, var), cfg, var)


def greedy(p, cfg, ids, px, steps):
    ids = list(ids)
    P = len(ids)
    out, gaps = [], []
    for _ in range(steps):
        lg = forward(p, cfg, ids, px, P)[-1]
        o = np.argsort(lg)[::-1]
        out.append(int(o[0]))
        gaps.append(float(lg[o[0]] - lg[o[1]]))
        ids.append(int(o[0]))
    return out, gaps
