"""models/pg1-tiny-padded/: pg1-tiny with its embedding table padded past the tokenizer, as real HF
checkpoints are (257216 rows for 257152 pieces + <image>), saved by transformers 4.57 in hf/, and
what transformers does with it: greedy ids that include an id >= the tokenizer size, and the text
its tokenizer decodes them to (such ids decode as empty text).

Rows 2153..2216 are new. All but one are the mean row plus small seeded noise (like HF's
resize_token_embeddings); row PAD_ROW is ALPHA x the row of a token that greedy decoding picks
after a few steps, so argmax moves to PAD_ROW exactly where it would have picked that token.
"""
import json
import os
import shutil
import tempfile

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.numpy import load_file, save_file

from common import FIX, rng, write_json
from make_models import STEPS, hf_greedy, hf_logits

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

BASE = "pg1-tiny"
NAME = "pg1-tiny-padded"
EXTRA = 64            # rows added (2153 -> 2217, like 257152 + 64 in the real checkpoints)
ALPHA = 1.25          # scale of the copied row
MIN_STEP = 2          # the padded id must first appear at this greedy step or later
MIN_GAP = 1e-3
COPY = ["tokenizer.json", "tokenizer_config.json", "tokenizer.model", "preprocessor_config.json"]


def load(folder):
    from transformers import PaliGemmaForConditionalGeneration, PaliGemmaProcessor
    model = PaliGemmaForConditionalGeneration.from_pretrained(folder, torch_dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    return model, PaliGemmaProcessor.from_pretrained(folder)


def case_inputs(ex, i):
    return tuple(ex[f"case{i}.{k}"] for k in ["input_ids", "token_type_ids", "attention_mask", "pixel_values",
                                              "position_ids"])


@torch.no_grad()
def step_logits(model, ids, tt, am, pv, steps):
    """Greedy tokens and the logits row of every step (the KV-cached loop of make_models.hf_greedy)."""
    from transformers import DynamicCache
    T = ids.shape[1]
    out = model(input_ids=torch.tensor(ids), token_type_ids=torch.tensor(tt), attention_mask=torch.tensor(am),
                pixel_values=torch.tensor(pv), past_key_values=DynamicCache(), use_cache=True,
                cache_position=torch.arange(T))
    toks, rows, am_ = [], [], list(am[0])
    for s in range(steps):
        rows.append(out.logits[0, -1].float().numpy())
        toks.append(int(rows[-1].argmax()))
        am_.append(1)
        out = model(input_ids=torch.tensor([[toks[-1]]]), attention_mask=torch.tensor([am_]),
                    past_key_values=out.past_key_values, use_cache=True, position_ids=torch.tensor([[T + s + 1]]),
                    cache_position=torch.tensor([T + s]))
    return toks, np.stack(rows)


def choose_row(model, ex, meta, V):
    """The (token, first step) whose ALPHA-scaled copy takes over greedy decoding at step >= MIN_STEP."""
    E = model.get_input_embeddings().weight.detach().numpy()
    for m in meta["cases"][:2]:
        i = m["index"]
        ids, tt, am, pv, pos = case_inputs(ex, i)
        toks, lg = step_logits(model, ids, tt, am, pv, STEPS)
        assert toks == ex[f"case{i}.greedy_ids"][0].tolist()
        for t in dict.fromkeys(toks[MIN_STEP:]):
            wins = [s for s in range(len(toks)) if ALPHA * lg[s, t] > lg[s].max() + MIN_GAP]
            if wins and wins[0] >= MIN_STEP and toks[wins[0]] == t:
                return t, i, wins[0]
    raise AssertionError("no token gives a padded-row takeover; change ALPHA")


def main():
    base = os.path.join(FIX, "models", BASE)
    d = os.path.join(FIX, "models", NAME)
    model, proc = load(os.path.join(base, "hf"))
    tok = proc.tokenizer
    V = model.config.text_config.vocab_size
    n_tok = len(tok)
    assert V == n_tok == 2153, (V, n_tok)
    ex = load_file(os.path.join(base, "expected.safetensors"))
    meta = json.load(open(os.path.join(base, "cases.json")))
    t, first_case, first_step = choose_row(model, ex, meta, V)
    pad_row = V + 7

    E = model.get_input_embeddings().weight.detach().numpy().astype(np.float64)
    r = rng(4242)
    new = E.mean(0) + r.normal(0.0, 1e-3, (EXTRA, E.shape[1]))
    new[pad_row - V] = ALPHA * E[t]
    model.resize_token_embeddings(V + EXTRA)
    with torch.no_grad():
        model.get_input_embeddings().weight[V:] = torch.from_numpy(new.astype(np.float32))
    model.tie_weights()
    assert model.config.text_config.vocab_size == V + EXTRA
    assert torch.equal(model.lm_head.weight, model.get_input_embeddings().weight)

    tmp = tempfile.mkdtemp()
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        hd = os.path.join(d, "hf")
        shutil.rmtree(hd, ignore_errors=True)
        os.makedirs(hd)
        for f in ["config.json", "model.safetensors"]:
            shutil.copyfile(os.path.join(tmp, f), os.path.join(hd, f))
        for f in COPY:
            shutil.copyfile(os.path.join(base, "hf", f), os.path.join(hd, f))
    finally:
        shutil.rmtree(tmp)

    model, proc = load(hd)  # everything below comes from the saved folder
    tok = proc.tokenizer
    assert model.get_input_embeddings().weight.shape[0] == V + EXTRA
    assert tok.decode([pad_row]) == "" and tok.decode([pad_row], skip_special_tokens=True) == ""
    assert tok.convert_ids_to_tokens(pad_row) is None
    tensors, cases = {}, []
    hits = 0
    for m in meta["cases"]:
        i = m["index"]
        ids, tt, am, pv, pos = case_inputs(ex, i)
        img = Image.open(os.path.join(FIX, m["resized_image"])).convert("RGB")
        enc = proc(text="<image>" + m["prompt"], images=img, return_tensors="np")
        assert np.array_equal(enc["input_ids"], ids)
        toks, gaps = hf_greedy(model, ids, tt, am, pv, STEPS)
        assert min(gaps) >= MIN_GAP, (i, min(gaps))
        last = hf_logits(model, ids, tt, am, pv, pos)[0, -1]
        with torch.no_grad():
            gen = model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(am),
                                 token_type_ids=torch.tensor(tt), pixel_values=torch.tensor(pv),
                                 max_new_tokens=STEPS, do_sample=False)[0, ids.shape[1]:].tolist()
        eos = model.generation_config.eos_token_id
        stop = toks.index(eos) + 1 if eos in toks else STEPS
        assert gen == toks[:stop], (i, gen, toks)
        outside = [s for s, x in enumerate(toks) if x >= n_tok]
        hits += bool(outside)
        tensors[f"case{i}.greedy_ids"] = np.array([toks], np.int64)
        tensors[f"case{i}.last_logits"] = last[None].astype(np.float32)
        cases.append({"index": i, "image": m["image"], "resized_image": m["resized_image"], "prompt": m["prompt"],
                      "greedy_ids": toks, "generate_ids": gen, "outside_tokenizer_steps": outside,
                      "text": tok.decode(gen, skip_special_tokens=True), "text_with_special": tok.decode(gen),
                      "min_gap": min(gaps)})
    assert hits >= 1 and cases[first_case]["outside_tokenizer_steps"][0] == first_step, cases[first_case]
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(d, "expected.safetensors"))
    info = {"model": NAME, "base": BASE, "transformers": transformers.__version__,
            "inputs": f"models/{BASE}/expected.safetensors case{{i}}.input_ids, token_type_ids, attention_mask, "
                      "position_ids, pixel_values (the same prompts and images)",
            "embedding_rows": V + EXTRA, "tokenizer_size": n_tok, "padded_rows": [V, V + EXTRA - 1],
            "pad_row": pad_row, "pad_row_is": f"{ALPHA} x row {t}", "copied_token": t,
            "pad_row_decodes_to": tok.decode([pad_row]), "other_padded_rows": "mean row + N(0, 1e-3) noise, seed 4242",
            "first_takeover": {"case": first_case, "step": first_step},
            "generate": "model.generate(max_new_tokens=24, do_sample=False): stops after <eos> (id 1)",
            "text": "tokenizer.decode(generate_ids, skip_special_tokens=True)", "steps": STEPS, "cases": cases}
    write_json(os.path.join(d, "cases.json"), info, indent=1)
    print(f"{NAME}: row {pad_row} = {ALPHA} x row {t}; out-of-tokenizer ids in {hits} of {len(cases)} cases "
          f"(first: case {first_case} step {first_step})")


if __name__ == "__main__":
    main()
