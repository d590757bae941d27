"""transformers 5.x folders: models/<name>/hf5/ (hf/ loaded and saved again by transformers 5) and
models/<name>/cases-tf5.json (transformers 5's greedy ids on the cases of expected.safetensors).

Run with the transformers 5 interpreter (PYTHON_TF5, requirements-tf5.txt). Asserts that
transformers 5 reproduces transformers 4.57's greedy ids exactly and its logits within 1e-5
(relative to max |logit|), on the folder it wrote.
"""
import json
import os
import shutil
import tempfile

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors import safe_open
from safetensors.numpy import load_file

from common import FIX, sha256, write_json
from make_models import CFGS, STEPS, hf_greedy, hf_logits, rel

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)
assert transformers.__version__.startswith("5."), transformers.__version__

# What transformers 5 writes for PaliGemma (checked below, documented in tests/fixtures/README.md).
WRITES = ["config.json", "generation_config.json", "model.safetensors", "processor_config.json",
          "tokenizer.json", "tokenizer_config.json"]


def load(folder):
    from transformers import AutoProcessor, PaliGemmaForConditionalGeneration
    model = PaliGemmaForConditionalGeneration.from_pretrained(folder, dtype=torch.float32,
                                                              attn_implementation="eager").eval()
    return model, AutoProcessor.from_pretrained(folder)


def save_hf5(name):
    """hf/ loaded and saved by transformers 5 into hf5/ (exactly the files it writes)."""
    d = os.path.join(FIX, "models", name)
    model, proc = load(os.path.join(d, "hf"))
    tmp = tempfile.mkdtemp()
    try:
        model.save_pretrained(tmp)
        proc.save_pretrained(tmp)
        got = sorted(os.listdir(tmp))
        assert got == WRITES, got
        out = os.path.join(d, "hf5")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        for f in got:
            shutil.copyfile(os.path.join(tmp, f), os.path.join(out, f))
    finally:
        shutil.rmtree(tmp)
    return out


def facts(d, out, model):
    """What differs from the 4.57 folder (asserted, so the README stays true)."""
    cfg = json.load(open(os.path.join(out, "config.json")))
    old = json.load(open(os.path.join(d, "hf", "config.json")))
    with safe_open(os.path.join(out, "model.safetensors"), "np") as f:
        names = sorted(f.keys())
    with safe_open(os.path.join(d, "hf", "model.safetensors"), "np") as f:
        assert names == sorted(f.keys())
    proc = json.load(open(os.path.join(out, "processor_config.json")))
    tc = json.load(open(os.path.join(out, "tokenizer_config.json")))
    return {
        "model_safetensors_identical_to_hf": sha256(os.path.join(out, "model.safetensors"))
        == sha256(os.path.join(d, "hf", "model.safetensors")),
        "tensor_name_prefixes": sorted({".".join(n.split(".")[:2]) for n in names}),
        # The module names of the loaded model (state_dict(); not what save_pretrained writes).
        "module_name_prefixes": sorted({".".join(n.split(".")[:3]) for n in model.state_dict()}),
        "config_top_level_vocab_size": cfg.get("vocab_size"),
        "config_text_vocab_size": cfg["text_config"]["vocab_size"],
        "config_image_token_index": cfg.get("image_token_index"),
        "config_keys_added": sorted(set(cfg) - set(old)),
        "text_config_keys_added": sorted(set(cfg["text_config"]) - set(old["text_config"])),
        "text_config_keys_removed": sorted(set(old["text_config"]) - set(cfg["text_config"])),
        "processor_config_keys": list(proc),
        "tokenizer_config": tc,
    }


def run(name):
    c = CFGS[name]
    d = os.path.join(FIX, "models", name)
    out = save_hf5(name)
    model, proc = load(out)  # everything below is computed from the folder transformers 5 wrote
    ex = load_file(os.path.join(d, "expected.safetensors"))
    meta = json.load(open(os.path.join(d, "cases.json")))
    cases, worst = [], 0.0
    for m in meta["cases"]:
        i = m["index"]
        ids, tt, am = ex[f"case{i}.input_ids"], ex[f"case{i}.token_type_ids"], ex[f"case{i}.attention_mask"]
        pv, pos = ex[f"case{i}.pixel_values"], ex[f"case{i}.position_ids"]
        img = Image.open(os.path.join(FIX, m["resized_image"])).convert("RGB")
        enc = proc(text="<image>" + m["prompt"], images=img, return_tensors="np")
        assert np.array_equal(enc["input_ids"], ids), (name, i, "input ids differ from 4.57's")
        assert np.abs(enc["pixel_values"] - pv).max() < 1e-6, (name, i, "pixel values differ")
        lg = hf_logits(model, ids, tt, am, pv, pos)
        # transformers 5 applies Gemma 2's final soft-cap in PaliGemmaForConditionalGeneration; 4.57 did not.
        cap = c.get("final_softcap")
        old = ex[f"case{i}.logits"].astype(np.float64)
        e = rel(lg, cap * np.tanh(old / cap) if cap else old)
        assert e < 1e-5, (name, i, e)
        worst = max(worst, e)
        toks, gaps = hf_greedy(model, ids, tt, am, pv, STEPS)
        want = ex[f"case{i}.greedy_ids"][0].tolist()
        assert toks == want, (name, i, toks, want)
        cases.append({"index": i, "prompt": m["prompt"], "greedy_ids": toks,
                      "greedy_text": proc.tokenizer.decode(toks), "logits_max_rel_vs_4.57": e})
    info = {"model": name, "folder": "hf5", "transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
            "made_from": "hf/ loaded by PaliGemmaForConditionalGeneration.from_pretrained and "
                         "AutoProcessor.from_pretrained, then save_pretrained of both",
            "greedy_ids_equal_4.57": True,
            "final_logit_softcap_applied": bool(c.get("final_softcap")),
            "logits_compared_with": ("softcap * tanh(expected.safetensors logits / softcap)"
                                     if c.get("final_softcap") else "expected.safetensors logits"), "logits_max_rel_vs_4.57": worst, "steps": STEPS,
            "files": WRITES, "facts": facts(d, out, model), "cases": cases}
    write_json(os.path.join(d, "cases-tf5.json"), info, indent=1)
    print(f"{name} hf5: transformers {transformers.__version__}, greedy equal, logits rel {worst:.2e}")


if __name__ == "__main__":
    for n in ["pg1-tiny", "pg2-tiny"]:
        run(n)
