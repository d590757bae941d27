"""Peer benchmark (a script, not a test): HF transformers (PyTorch, CPU) on the HF-layout
safetensors checkpoint that our folders were converted from, timed as `pg bench` times pg:
load (processor-free: the model; cold after dropping the files from the page cache, then warm),
time to first token and decode speed of a greedy caption prompt (256 image tokens, <bos>,
"caption en\\n" from the folder's tokenizer.json; a grey image), no stop at <eos>. One JSON object
on stdout.

  /root/.cache/pg/venv-bench/bin/python tests/bench/peers/pytorch.py HF_DIR --dtype bf16|fp32 \\
      [--tokens 16] [--loads 2] [--cold] [--threads 2]

Environment: tests/bench/peers/requirements.txt (Python 3.11).
"""

import argparse
import glob
import json
import os
import statistics
import sys
import time


def files_of(d):
    return sorted(glob.glob(os.path.join(d, "*.safetensors")) + glob.glob(os.path.join(d, "*.json")))


def evict(files):
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def read_all(files):
    t = time.perf_counter()
    n = 0
    with open(os.devnull, "wb"):
        for f in files:
            with open(f, "rb", buffering=0) as fh:
                while True:
                    b = fh.read(64 << 20)
                    if not b:
                        break
                    n += len(b)
    return n, (time.perf_counter() - t) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--tokens", type=int, default=16)
    ap.add_argument("--loads", type=int, default=2)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()

    files = files_of(a.dir)
    read_cold = None
    if a.cold:
        evict(files)
        _, read_cold = read_all(files)
    nbytes, read_warm = read_all(files)
    if a.cold:
        evict(files)

    t_import = time.perf_counter()
    import torch
    from tokenizers import Tokenizer
    from transformers import LogitsProcessor, LogitsProcessorList, PaliGemmaForConditionalGeneration

    import_ms = (time.perf_counter() - t_import) * 1000
    if a.threads:
        torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    loads = []
    model = None
    for i in range(a.loads):
        if model is not None:
            del model
        t = time.perf_counter()
        model = PaliGemmaForConditionalGeneration.from_pretrained(a.dir, dtype=dtype)
        model.eval()
        loads.append((time.perf_counter() - t) * 1000)
        print(f"pytorch: load {i + 1}: {loads[-1]:.0f} ms", file=sys.stderr)

    cfg = model.config
    tok = Tokenizer.from_file(os.path.join(a.dir, "tokenizer.json"))
    n_img = cfg.vision_config.num_image_tokens if hasattr(cfg.vision_config, "num_image_tokens") else (
        cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
    ids = [cfg.image_token_index] * n_img + [2] + tok.encode("caption en\n", add_special_tokens=False).ids
    input_ids = torch.tensor([ids])
    size = cfg.vision_config.image_size
    pixel_values = torch.full((1, 3, size, size), (128 / 255 - 0.5) / 0.5, dtype=dtype)
    mask = torch.ones_like(input_ids)
    token_type_ids = torch.zeros_like(input_ids)

    class Clock(LogitsProcessor):
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores):
            self.times.append(time.perf_counter())
            return scores

    def run():
        clock = Clock()
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                input_ids=input_ids,
                pixel_values=pixel_values,
                attention_mask=mask,
                token_type_ids=token_type_ids,
                max_new_tokens=a.tokens,
                min_new_tokens=a.tokens,
                do_sample=False,
                logits_processor=LogitsProcessorList([clock]),
            )
        first, last = clock.times[0], clock.times[-1]
        rate = (len(clock.times) - 1) / (last - first) if last > first else 0.0
        return (first - t0) * 1000, rate

    ttft, rate = run()
    print(f"pytorch: first run: ttft {ttft:.0f} ms, {rate:.2f} tok/s", file=sys.stderr)
    print(json.dumps({
        "system": f"HF transformers {__import__('transformers').__version__} (PyTorch {torch.__version__})",
        "model": a.dir,
        "dtype": a.dtype,
        "threads": torch.get_num_threads(),
        "prompt_tokens": len(ids),
        "tokens": a.tokens,
        "import_ms": import_ms,
        "read_bytes": nbytes,
        "read_cold_ms": read_cold,
        "read_warm_ms": read_warm,
        "load_cold_ms": loads[0] if a.cold else None,
        "load_warm_ms": statistics.median(loads[1:] if a.cold else loads),
        "loads_ms": loads,
        "ttft_ms": ttft,
        "decode_tokens_per_s": rate,
    }))


if __name__ == "__main__":
    main()
