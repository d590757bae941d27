"""Trains the tiny shapes PaliGemma (PaliGemma 1 layout: SigLIP-style vision + Gemma) with HF transformers.

PaliGemmaForConditionalGeneration, prefix-LM (token_type_ids 0 on image + prefix + "\\n", 1 on the suffix),
loss on the suffix only (labels -100 elsewhere; the loc tokens' targets half smoothed over neighbouring
bins, and 3 in 4 of the loc tokens fed back as input moved by a few bins, as the model's own near misses
are when it generates). The vision tower starts from stage 0 (pretrain_vision.py), as PaliGemma starts
from a trained SigLIP, and trains on at 0.3x the learning rate. The forward pass runs under bfloat16
autocast; the weights, the output head and the loss are float32. Every batch is freshly generated from
seeds (TRAIN_SEED0 + step * BATCH + i, in a DataLoader worker), so no scene repeats and the held-out
seeds are never seen. Uses the project's fixture tokenizer (vocab 2153 with <locNNNN>, <segNNN>,
<image>), and the VQ-VAE encoder from train_vqvae.py for the seg-token targets.

Writes <fixtures>/models/shapes/hf/ (config, float16 safetensors, tokenizer and processor files) and
<build>/curve.json (loss and teacher-forced suffix-token accuracy per task over training).
"""
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402
import train_vqvae as vq  # noqa: E402

FIX = vq.FIX
BUILD = vq.BUILD
OUT = os.environ.get("PG_SHAPES_OUT") or os.path.join(FIX, "models", "shapes", "hf")
TOK_DIR = os.path.join(FIX, "tokenizer")
SPECIAL = json.load(open(os.path.join(TOK_DIR, "special.json")))
IMAGE_ID, BOS, EOS, PAD = SPECIAL["image"], SPECIAL["bos"], SPECIAL["eos"], SPECIAL["pad"]
LOC0, SEG0, VOCAB = SPECIAL["loc0000"], SPECIAL["seg000"], SPECIAL["hf_vocab_size"]

CFG = dict(image=112, patch=16, v_hidden=128, v_heads=4, v_mlp=256, v_layers=4,
           hidden=128, heads=4, kv_heads=1, head_dim=32, mlp=256, layers=3)
# Experiments only (the committed weights use the defaults): PG_SHAPES_CFG='{"layers": 4}' overrides CFG.
CFG.update(json.loads(os.environ.get("PG_SHAPES_CFG", "{}")))
SEED = 4242
TRAIN_SEED0 = 10_000_000
STEPS = int(os.environ.get("PG_SHAPES_STEPS", "8500"))  # length of the learning-rate schedule
# PG_SHAPES_STOP=K stops after step K (inclusive) of that schedule, with the same weights as the
# ckpt-K a full run saves (for a shorter run on a busy machine); the committed weights are the full run.
STOP = int(os.environ.get("PG_SHAPES_STOP", str(STEPS - 1)))
BATCH = 16
LR, WARMUP = float(os.environ.get("PG_SHAPES_LR", "1.5e-3")), 100
VISION_LR = float(os.environ.get("PG_SHAPES_VISION_LR", "0.3"))  # the stage-0 vision tower's LR, as a fraction of LR
TASKS = [("caption", 0.15), ("count", 0.15), ("detect", 0.4), ("segment", 0.3)]
# Loc-token targets: (1 - LOC_SOFT) on the true bin + LOC_SOFT spread as a Gaussian of LOC_SIGMA bins
# around it, so a near miss costs less than a far one and the coordinate is learned as a smooth quantity.
LOC_FMAX = float(os.environ.get("PG_SHAPES_LOC_FMAX", "16"))  # highest loc-embedding frequency (cycles per side)
LOC_SOFT, LOC_SIGMA = float(os.environ.get("PG_SHAPES_LOC_SOFT", "0.5")), 8.0
# Loc-token inputs (not targets): with probability LOC_JITTER_P a suffix loc token is fed as a bin
# LOC_JITTER bins (Gaussian) away, as the model's own near misses are fed back when it generates, so each
# coordinate is read from the image rather than added to the previous (possibly wrong) one.
LOC_JITTER = float(os.environ.get("PG_SHAPES_LOC_JITTER", "20"))
LOC_JITTER_P = float(os.environ.get("PG_SHAPES_LOC_JITTER_P", "0.75"))
# Curriculum: caption and count first. Trained on the mix from the start the LM learns the language
# prior of the detect/segment strings and stays blind (loss with shuffled images = loss with the right
# ones after 1000 steps); on caption/count alone image use starts after ~150 steps.
WARM_TASKS, WARM_STEPS = [0.45, 0.45, 0.05, 0.05], 300
N_TOKENS = (CFG["image"] // CFG["patch"]) ** 2


def hf_config():
    from transformers import GemmaConfig, PaliGemmaConfig, SiglipVisionConfig
    c = CFG
    text = GemmaConfig(vocab_size=VOCAB, hidden_size=c["hidden"], intermediate_size=c["mlp"],
                       num_hidden_layers=c["layers"], num_attention_heads=c["heads"],
                       num_key_value_heads=c["kv_heads"], head_dim=c["head_dim"],
                       hidden_activation="gelu_pytorch_tanh", hidden_act="gelu_pytorch_tanh", rms_norm_eps=1e-6,
                       rope_theta=10000.0, max_position_embeddings=8192, pad_token_id=PAD, eos_token_id=EOS,
                       bos_token_id=BOS)
    vis = SiglipVisionConfig(hidden_size=c["v_hidden"], intermediate_size=c["v_mlp"],
                             num_hidden_layers=c["v_layers"], num_attention_heads=c["v_heads"],
                             image_size=c["image"], patch_size=c["patch"], hidden_act="gelu_pytorch_tanh",
                             layer_norm_eps=1e-6, vision_use_head=False, projection_dim=c["hidden"])
    cfg = PaliGemmaConfig(vision_config=vis.to_dict(), text_config=text.to_dict(), image_token_index=IMAGE_ID,
                          projection_dim=c["hidden"], hidden_size=c["hidden"], pad_token_id=PAD)
    cfg._attn_implementation = "eager"
    cfg.text_config._attn_implementation = "eager"
    cfg.vision_config._attn_implementation = "eager"
    return cfg


def init_patch_embedding(model):
    """First 3 * (P/4)^2 patch-embedding filters = the mean of one colour channel over one 4x4 block of
    the patch (a 4x-downsampled copy of the image in the token), the rest keep the random init. Without
    it the vision tower collapsed to near image-independent outputs (the LM learned language priors
    first; token accuracy flat at the prior after 1000 steps)."""
    conv = model.model.vision_tower.vision_model.embeddings.patch_embedding
    P = CFG["patch"]
    k = P // 4
    with torch.no_grad():
        n = 0
        for c in range(3):
            for by in range(k):
                for bx in range(k):
                    conv.weight[n].zero_()
                    conv.weight[n, c, by * 4:(by + 1) * 4, bx * 4:(bx + 1) * 4] = 1.0 / 16
                    conv.bias[n] = 0.0
                    n += 1
        conv.weight[n:] *= 0.5
        # Position embeddings: sin/cos of the patch centre's column (first half) and row (second half) at
        # 0.25-3.5 cycles per image, so where a patch is can be read linearly (the loc tokens are smooth too).
        pos = model.model.vision_tower.vision_model.embeddings.position_embedding.weight
        side, half = CFG["image"] // P, pos.shape[1] // 2
        freqs = torch.linspace(0.25, 3.5, half // 2)
        for p in range(side * side):
            for j, v in enumerate([((p % side) + 0.5) / side, ((p // side) + 0.5) / side]):
                a = 2 * math.pi * freqs * v
                pos[p, j * half:(j + 1) * half] = 0.3 * torch.cat([torch.sin(a), torch.cos(a)])
        # Near-identity vision blocks and a near-identity projector: the image tokens start as (a
        # normalised copy of) the small image, not as noise the LM learns to ignore.
        for layer in model.model.vision_tower.vision_model.encoder.layers:
            layer.self_attn.out_proj.weight.mul_(0.1)
            layer.mlp.fc2.weight.mul_(0.1)
        proj = model.model.multi_modal_projector.linear
        d_v = proj.weight.shape[1]
        proj.weight.mul_(0.1)
        proj.weight[:d_v, :d_v] += 0.3 * torch.eye(d_v)
        proj.bias.zero_()


def init_special_embeddings(model, g):
    """Smooth loc embeddings (neighbouring <locN> alike: random Fourier features of N/1023) so the tied
    output head starts with an ordered coordinate space; seg rows keep the random init."""
    emb = model.get_input_embeddings().weight
    d = emb.shape[1]
    n = torch.arange(1024, dtype=torch.float32)[:, None] / 1023.0
    freqs = torch.exp(torch.empty(d // 2).uniform_(math.log(0.5), math.log(LOC_FMAX), generator=g))
    phase = torch.empty(d // 2).uniform_(0, 2 * math.pi, generator=g)
    feats = torch.cat([torch.sin(2 * math.pi * n * freqs + phase), torch.cos(2 * math.pi * n * freqs + phase)], 1)
    with torch.no_grad():
        emb[LOC0:LOC0 + 1024] = feats * emb.std()


class Batcher:
    """Makes (input_ids, token_type_ids, attention_mask, labels, pixel_values) for scene seeds."""

    def __init__(self, tok, proc):
        self.tok, self.proc = tok, proc
        self.enc, self.book = vq.load_encoder()

    def codes(self, objects):
        if not objects:
            return {}
        m = np.stack([scenes.mask_crop64(o["mask"], o["box"]) for o in objects])
        cs = vq.encode_codes(self.enc, self.book, m)
        return {id(o): c.tolist() for o, c in zip(objects, cs)}

    def example(self, seed, probs=None):
        """(scene, task, prompt, target) for one seed: the task and its arguments come from the seed."""
        sc = scenes.make_scene(seed)
        r = np.random.default_rng([seed, 1])
        task = TASKS[r.choice(len(TASKS), p=probs or [p for _, p in TASKS])][0]
        if task == "caption":
            return sc, task, "caption en", scenes.caption(sc)
        if task == "count":
            present = sorted({o["shape"] for o in sc["objects"]}, key=scenes.SHAPES.index)
            # Half about a shape in the scene, half about any of the 4 (the evaluation asks all 4).
            kind = present[r.integers(len(present))] if r.random() < 0.5 else scenes.SHAPES[r.integers(4)]
            return sc, task, f"answer en how many {scenes.PLURAL[kind]}?", scenes.count(sc, kind)
        if task == "detect":
            labels = scenes.label_list(r, sc)
        else:  # `pg segment` asks for one label at a time
            present = sorted({o["shape"] for o in sc["objects"]}, key=scenes.SHAPES.index)
            labels = [present[r.integers(len(present))] if r.random() < 0.8 else scenes.SHAPES[r.integers(4)]]
        prompt = f"{task} " + " ; ".join(labels)
        if task == "detect":
            return sc, task, prompt, scenes.detect_target(sc, labels)
        codes = self.codes(sc["objects"])
        return sc, task, prompt, scenes.segment_target(sc, labels, lambda o: codes[id(o)])

    def ids(self, prompt, target):
        p = self.tok(prompt + "\n", add_special_tokens=False).input_ids
        s = (self.tok(target, add_special_tokens=False).input_ids if target else []) + [EOS]
        prefix = [IMAGE_ID] * N_TOKENS + [BOS] + p
        return prefix, s

    def batch(self, seeds, probs=None):
        exs = [self.example(s, probs) for s in seeds]
        seqs = [self.ids(p, t) for _, _, p, t in exs]
        L = max(len(a) + len(b) for a, b in seqs)
        ids = torch.full((len(seqs), L), PAD, dtype=torch.long)
        tt = torch.zeros((len(seqs), L), dtype=torch.long)
        am = torch.zeros((len(seqs), L), dtype=torch.long)
        lab = torch.full((len(seqs), L), -100, dtype=torch.long)
        for i, (a, b) in enumerate(seqs):
            n = len(a) + len(b)
            ids[i, :n] = torch.tensor(a + b)
            tt[i, len(a):n] = 1
            am[i, :n] = 1
            lab[i, len(a):n] = torch.tensor(b)
        px = self.proc(images=[sc["image"] for sc, _, _, _ in exs], return_tensors="pt")["pixel_values"]
        return dict(input_ids=ids, token_type_ids=tt, attention_mask=am, labels=lab, pixel_values=px), \
            [t for _, t, _, _ in exs]


def loc_targets(labels):
    """For target ids (N,): the mask of loc ids, and their soft targets (n_loc, 1024) (None if there are none)."""
    is_loc = (labels >= LOC0) & (labels < LOC0 + 1024)
    if not is_loc.any():
        return is_loc, None
    bins = torch.arange(1024, dtype=torch.float32)
    t = (labels[is_loc] - LOC0).float()[:, None]
    g = torch.exp(-0.5 * ((bins[None] - t) / LOC_SIGMA) ** 2)
    return is_loc, g / g.sum(1, keepdim=True)


def suffix_loss(model, b):
    """Next-token cross-entropy on the suffix (labels != -100), with the loc positions' targets smoothed
    (LOC_SOFT of the mass as a Gaussian over the neighbouring loc bins). The output head (2/3 of a step's
    arithmetic over all positions) is applied at the suffix positions only."""
    # bfloat16 autocast for the vision tower and the decoder (1.2x faster steps on this AVX512-BF16 CPU);
    # the weights, the output head and the loss stay float32.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model.model(**b, use_cache=False, return_dict=True).last_hidden_state  # labels: prefix-LM mask
    lab = b["labels"][:, 1:]
    m = lab != -100
    logp = torch.log_softmax(model.lm_head(hidden[:, :-1][m].float()), -1)  # the output head in float32
    tgt = lab[m]
    nll = -logp.gather(1, tgt[:, None])[:, 0]
    is_loc, soft = loc_targets(tgt)
    if soft is not None and LOC_SOFT > 0:
        soft_nll = -(logp[is_loc][:, LOC0:LOC0 + 1024] * soft).sum(1)
        nll = nll.clone()
        nll[is_loc] = (1 - LOC_SOFT) * nll[is_loc] + LOC_SOFT * soft_nll
    return nll.mean()


def suffix_metrics(model, b, tasks):
    """Teacher-forced suffix-token accuracy per task (the next-token argmax equals the target, with the
    prefix-LM mask training uses), and the mean absolute loc-bin error of detect/segment loc tokens."""
    with torch.no_grad():
        out = model(**b)
    pred = out.logits[:, :-1].argmax(-1)
    lab = b["labels"][:, 1:]
    acc = {}
    for t in sorted(set(tasks)):
        rows = torch.tensor([x == t for x in tasks])
        m = (lab != -100) & rows[:, None]
        acc[t] = round(float(((pred == lab) & m).sum() / m.sum()), 4)
    is_loc = (lab >= LOC0) & (lab < LOC0 + 1024)
    loc_pred = out.logits[:, :-1, LOC0:LOC0 + 1024].argmax(-1)
    acc["loc_mae_bins"] = round(float((loc_pred - (lab - LOC0)).abs()[is_loc].float().mean()), 1)
    return acc, out.loss.item()


class StepBatches(torch.utils.data.Dataset):
    """Batch `step` of the schedule, made in a DataLoader worker process (the scenes, the VQ codes and the
    pixel values take about 40 % of a step on one core)."""

    def __init__(self, bat, steps):
        self.bat, self.steps = bat, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, step):
        b = self.bat.batch([TRAIN_SEED0 + step * BATCH + i for i in range(BATCH)],
                           WARM_TASKS if step < WARM_STEPS else None)[0]
        return jitter_locs(b, np.random.default_rng([TRAIN_SEED0 + step, 2]))


def jitter_locs(b, r):
    """The batch with some suffix loc input ids moved by a Gaussian number of bins (LOC_JITTER, with
    probability LOC_JITTER_P each); the labels keep the true bins."""
    ids = b["input_ids"]
    is_loc = (b["token_type_ids"] == 1) & (ids >= LOC0) & (ids < LOC0 + 1024)
    n = int(is_loc.sum())
    if n == 0 or LOC_JITTER <= 0:
        return b
    ids = ids.clone()
    move = torch.from_numpy(np.rint(r.normal(0, LOC_JITTER, n)).astype(np.int64))
    move[torch.from_numpy(r.random(n) >= LOC_JITTER_P)] = 0
    ids[is_loc] = (ids[is_loc] - LOC0 + move).clamp(0, 1023) + LOC0
    return dict(b, input_ids=ids)


def one_thread(_):
    torch.set_num_threads(1)


def save(model, tok_files_from, out=OUT):
    from safetensors.torch import save_file
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    cfg = model.config
    cfg.dtype = "float16"
    cfg.to_json_file(os.path.join(tmp, "config.json"))
    # Legacy (hub) tensor names, as the hub checkpoints and the other fixtures have them.
    sd = {}
    for k, v in model.state_dict().items():
        if k == "lm_head.weight":
            continue  # tied to the embedding
        k = k.replace("model.language_model.", "language_model.model.").replace(
            "model.vision_tower.", "vision_tower.").replace("model.multi_modal_projector.", "multi_modal_projector.")
        sd[k] = v.detach().to(torch.float16).contiguous()
    save_file(dict(sorted(sd.items())), os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
        shutil.copyfile(os.path.join(tok_files_from, f), os.path.join(tmp, f))
    pre = json.load(open(os.path.join(FIX, "models", "pg1-tiny", "hf", "preprocessor_config.json")))
    pre["image_seq_length"] = N_TOKENS
    pre["size"] = {"height": CFG["image"], "width": CFG["image"]}
    with open(os.path.join(tmp, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
        f.write("\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


def main():
    from transformers import AutoTokenizer, PaliGemmaForConditionalGeneration, SiglipImageProcessor
    torch.set_num_threads(1)  # also much faster than 2 on a shared 2-core machine (no OMP barrier stalls)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    g = torch.Generator().manual_seed(SEED)
    tok = AutoTokenizer.from_pretrained(TOK_DIR)
    assert tok("<loc0123><seg045>", add_special_tokens=False).input_ids == [LOC0 + 123, SEG0 + 45]
    proc = SiglipImageProcessor(size={"height": CFG["image"], "width": CFG["image"]}, resample=3,
                                image_mean=[0.5] * 3, image_std=[0.5] * 3)
    bat = Batcher(tok, proc)
    model = PaliGemmaForConditionalGeneration(hf_config())
    init_special_embeddings(model, g)
    init_patch_embedding(model)
    vision_pt = os.path.join(BUILD, "vision.pt")
    if not os.path.exists(vision_pt):
        sys.exit(f"train_model.py: {vision_pt} is missing; run pretrain_vision.py first (stage 0)")
    model.model.vision_tower.load_state_dict(torch.load(vision_pt))  # stage 0, as PaliGemma starts from SigLIP
    print(f"shapes model: vision tower from {vision_pt}", flush=True)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"shapes model: {n_params} parameters, steps 0..{min(STEPS - 1, STOP)} of a {STEPS}-step schedule, "
          f"batch {BATCH}", flush=True)
    vision_params = list(model.model.vision_tower.parameters())
    seen = {id(p) for p in vision_params}
    rest = [p for p in model.parameters() if id(p) not in seen]
    opt = torch.optim.AdamW([dict(params=rest, scale=1.0), dict(params=vision_params, scale=VISION_LR)],
                            lr=LR, betas=(0.9, 0.98), weight_decay=0.0)
    val, val_tasks = bat.batch(list(range(900_000 - 64, 900_000)))  # fixed validation batch (not held-out)
    n_steps = min(STEPS, STOP + 1)
    batches = torch.utils.data.DataLoader(StepBatches(bat, n_steps), batch_size=None, shuffle=False,
                                          num_workers=1, prefetch_factor=8, worker_init_fn=one_thread)
    curve = []
    t0 = time.time()
    ema = None
    for step, b in enumerate(batches):
        lr = LR * min(1.0, (step + 1) / WARMUP) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / STEPS)))
        for grp in opt.param_groups:
            grp["lr"] = lr * grp["scale"]
        loss = suffix_loss(model, b)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        if step % 50 == 0:
            print(f"step {step} loss {ema:.4f} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
        if step % 500 == 0 or step == n_steps - 1:
            model.eval()
            acc, val_loss = suffix_metrics(model, val, val_tasks)
            with torch.no_grad():  # how much the image matters: loss with the images shuffled
                shuffled = dict(val, pixel_values=val["pixel_values"].roll(1, 0))
                blind = model(**shuffled).loss.item() - val_loss
            model.train()
            curve.append(dict(step=step, loss=round(ema, 4), val_loss=round(val_loss, 4), seconds=round(time.time() - t0),
                              shuffled_image_loss_gap=round(blind, 4), val_token_accuracy=acc))
            print(json.dumps(curve[-1]), flush=True)
        if step > 0 and step % 500 == 0:  # intermediate checkpoints (not committed): the accuracy curve
            model.eval()
            save(model, TOK_DIR, os.path.join(BUILD, f"ckpt-{step}"))
            model.train()
    model.eval()
    save(model, TOK_DIR)
    os.makedirs(BUILD, exist_ok=True)
    with open(os.path.join(BUILD, "curve.json"), "w") as f:
        json.dump(dict(config=CFG, steps=STEPS, stop=STOP, batch=BATCH, lr=LR, curve=curve), f, indent=1)
    print(f"shapes model: saved to {OUT} ({time.time() - t0:.0f}s)")


if __name__ == "__main__":
    main()
