"""lora/<name>/: LoRA adapters made with the real peft package on the tiny models, and what
transformers 5 + peft compute with base + adapter (see tests/fixtures/lora/README.md).

Run with the transformers 5 interpreter (PYTHON_TF5, requirements-tf5.txt). peft initialises
lora_B to zero (a no-op adapter); here every lora_A / lora_B (and each modules_to_save copy) is
overwritten with seeded random values, so the adapter changes the outputs.
"""
import json
import math
import os
import shutil
import tempfile

import numpy as np
import peft
import torch
import transformers
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from common import FIX, rng, write_json
from make_models import STEPS, hf_greedy, hf_logits, rel

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "out_proj", "fc1", "fc2", "gate_proj", "up_proj",
              "down_proj", "linear"]
ADAPTERS = [  # name, base model, LoraConfig kwargs, seed
    ("attn", "pg1-tiny", dict(r=4, lora_alpha=8, target_modules=ATTN), 301),
    ("all-rslora", "pg2-tiny", dict(r=4, lora_alpha=8, target_modules=ALL_LINEAR, use_rslora=True), 6302),
    ("modules-to-save", "pg1-tiny", dict(r=4, lora_alpha=8, target_modules=ATTN,
                                         modules_to_save=["multi_modal_projector"]), 303),
]
DELTA = 0.3    # target |B A| scale / |W| per module (relative Frobenius norm of the update, roughly)
MTS_NOISE = 0.3  # modules_to_save copy = base + MTS_NOISE * std(base) * N(0, 1)
MIN_GAP = 1e-3
MIN_CASES = 4  # base cases whose adapted greedy run has a top-2 gap < MIN_GAP are left out
OUT_FILES = ["adapter_config.json", "adapter_model.safetensors"]  # peft also writes a README.md model card


def load_base(base):
    from transformers import PaliGemmaForConditionalGeneration
    # A path relative to FIX: peft stores it as base_model_name_or_path (reproducible anywhere).
    return PaliGemmaForConditionalGeneration.from_pretrained(
        os.path.join("models", base, "hf"), dtype=torch.float32, attn_implementation="eager").eval()


@torch.no_grad()
def randomise(model, seed):
    """Seeded lora_A, lora_B (and modules_to_save) values; returns the per-module scaling."""
    r = rng(seed)
    scaling = {}
    for name, mod in model.named_modules():
        if isinstance(mod, peft.tuners.lora.LoraLayer) and "default" in mod.lora_A:
            A, B = mod.lora_A["default"].weight, mod.lora_B["default"].weight
            W = mod.get_base_layer().weight
            s = mod.scaling["default"]
            scaling[name] = s
            a = r.normal(0.0, 1.0 / math.sqrt(A.shape[1]), A.shape)
            b = r.normal(0.0, 1.0, B.shape)
            # |s B A x| ~ DELTA |W x| on random x: scale B accordingly.
            ratio = np.linalg.norm(s * (b @ a)) / float(torch.linalg.norm(W))
            A.copy_(torch.from_numpy(a.astype(np.float32)))
            B.copy_(torch.from_numpy((b * DELTA / ratio).astype(np.float32)))
        if isinstance(mod, peft.utils.other.ModulesToSaveWrapper):
            for pname, p in mod.modules_to_save["default"].named_parameters():
                base = p.detach().numpy().astype(np.float64)
                p.copy_(torch.from_numpy((base + MTS_NOISE * base.std() * r.normal(0.0, 1.0, base.shape))
                                         .astype(np.float32)))
    return scaling


def run(name, base, kwargs, seed):
    """Makes the adapter with the first of seed, seed + 1000, ... for which at least MIN_CASES of the
    base's cases keep every greedy top-2 gap >= MIN_GAP (so float rounding cannot flip a token)."""
    for k in range(10):
        try:
            return make(name, base, kwargs, seed + 1000 * k)
        except SmallGap as e:
            print(f"  lora {name}: seed {seed + 1000 * k}: {e}; next seed")
    raise AssertionError(f"lora {name}: no seed passed the gap check")


class SmallGap(Exception):
    pass


def make(name, base, kwargs, seed):
    from peft import LoraConfig, PeftModel, get_peft_model
    bd = os.path.join(FIX, "models", base)
    out = os.path.join(FIX, "lora", name)
    model = load_base(base)
    pm = get_peft_model(model, LoraConfig(init_lora_weights=False, **kwargs))
    scaling = randomise(pm, seed)
    tmp = tempfile.mkdtemp()
    try:
        pm.save_pretrained(tmp)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        for f in OUT_FILES:
            shutil.copyfile(os.path.join(tmp, f), os.path.join(out, f))
    finally:
        shutil.rmtree(tmp)

    # Reference: a fresh base + the saved adapter, loaded the way users do.
    pm = PeftModel.from_pretrained(load_base(base), out).eval()
    ex = load_file(os.path.join(bd, "expected.safetensors"))
    meta = json.load(open(os.path.join(bd, "cases.json")))
    merged = PeftModel.from_pretrained(load_base(base), out).merge_and_unload().eval()
    tensors, cases, worst_merge, changed, dropped = {}, [], 0.0, 0.0, []
    for m in meta["cases"]:
        i = m["index"]
        ids, tt, am, pv, pos = (ex[f"case{i}.{k}"] for k in
                                ["input_ids", "token_type_ids", "attention_mask", "pixel_values", "position_ids"])
        toks, gaps = hf_greedy(pm, ids, tt, am, pv, STEPS)
        if min(gaps) < MIN_GAP:
            dropped.append({"index": i, "min_gap": min(gaps)})
            continue
        last = hf_logits(pm, ids, tt, am, pv, pos)[0, -1]
        mlast = hf_logits(merged, ids, tt, am, pv, pos)[0, -1]
        worst_merge = max(worst_merge, rel(mlast, last))
        assert hf_greedy(merged, ids, tt, am, pv, STEPS)[0] == toks, (name, i, "merged greedy differs")
        changed = max(changed, rel(last, ex[f"case{i}.logits"][0, -1]))
        tensors[f"case{i}.greedy_ids"] = np.array([toks], np.int64)
        tensors[f"case{i}.last_logits"] = last[None].astype(np.float32)
        cases.append({"index": i, "image": m["image"], "resized_image": m["resized_image"], "prompt": m["prompt"],
                      "prompt_len": int(ids.shape[1]), "greedy_ids": toks, "base_greedy_ids": ex[f"case{i}.greedy_ids"][0].tolist(),
                      "min_gap": min(gaps)})
    if len(cases) < MIN_CASES:
        raise SmallGap(f"only {len(cases)} cases keep every gap >= {MIN_GAP}: dropped {dropped}")
    assert worst_merge < 1e-5, (name, worst_merge)
    assert changed > 0.05, (name, "the adapter barely changes the logits", changed)
    assert any(c["greedy_ids"] != c["base_greedy_ids"] for c in cases), (name, "greedy ids unchanged")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(out, "expected.safetensors"))
    with safe_open(os.path.join(out, "adapter_model.safetensors"), "np") as f:
        keys = sorted(f.keys())
        shapes = {k: list(f.get_slice(k).get_shape()) for k in keys}
    cfg = json.load(open(os.path.join(out, "adapter_config.json")))
    info = {"adapter": name, "base": f"models/{base}/hf", "peft": peft.__version__,
            "transformers": transformers.__version__, "torch": torch.__version__.split("+")[0],
            "lora_config": {k: cfg[k] for k in ["r", "lora_alpha", "use_rslora", "target_modules", "modules_to_save",
                                                 "fan_in_fan_out", "bias", "use_dora"]},
            "scaling": sorted(set(scaling.values())), "seed": seed,
            "inputs": f"models/{base}/expected.safetensors case{{i}}.input_ids, token_type_ids, attention_mask, "
                      "position_ids, pixel_values",
            "merged_vs_unmerged_last_logits_max_rel": worst_merge, "last_logits_change_vs_base_max_rel": changed,
            "tensors": shapes, "steps": STEPS, "min_gap": MIN_GAP, "dropped_cases": dropped, "cases": cases}
    write_json(os.path.join(out, "cases.json"), info, indent=1)
    print(f"lora {name} on {base}: {len(keys)} tensors, scaling {info['scaling']}, merge rel {worst_merge:.1e}, "
          f"change vs base {changed:.2f}, greedy changed in "
          f"{sum(c['greedy_ids'] != c['base_greedy_ids'] for c in cases)}/{len(cases)} cases")


if __name__ == "__main__":
    os.chdir(FIX)
    for a in ADAPTERS:
        run(*a)
