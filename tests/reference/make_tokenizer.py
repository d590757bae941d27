"""Part 1: a tiny Gemma-style SentencePiece BPE tokenizer, PaliGemma-extended, plus HF conversion and cases."""
import io
import os
import shutil
import tempfile

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2

from common import FIX, fpath, prng, write_json

WORDS = (
    "the a an of in on at to and or with without is are was were be this that these those it its "
    "cat cats dog dogs car cars person people man woman child tree trees house building sky cloud "
    "water river road street sign table chair cup plate food pizza banana apple orange bird horse "
    "red green blue yellow white black small large big little old new left right top bottom front "
    "back near far under over behind next photo image picture what where how many who which color "
    "caption describe answer question detect segment ocr text number count there here one two three "
    "four five six seven eight nine ten hello world sitting standing running walking holding "
    "looking playing eating wearing riding parked grass field snow beach mountain window door wall "
    "bicycle motorcycle bus train truck boat airplane umbrella bag shirt hat glasses phone laptop "
    "book clock vase flower flowers kitchen room bed sofa television keyboard mouse elephant zebra "
    "giraffe bear sheep cow astronaut rocket coffee camera coins moon chelsea brick grid"
).split()
ACCENT = "café naïve résumé über straße façade crème brûlée niño señor déjà vu Zürich São Paulo à la".split()
CJK = "猫 狗 天空 图片 这是 一只 在 上面 写真 東京 의 사진 고양이".split()
TASKS = ["caption en", "caption es", "caption fr", "answer en", "question en", "detect", "segment",
         "ocr", "describe en"]


def corpus():
    r = prng(1234)
    lines = []
    for i in range(6000):
        n = r.randint(3, 14)
        ws = [r.choice(WORDS) for _ in range(n)]
        if r.random() < 0.1:
            ws.insert(r.randint(0, n), r.choice(ACCENT))
        if r.random() < 0.03:
            ws.insert(r.randint(0, n), r.choice(CJK))
        if r.random() < 0.2:
            ws.insert(r.randint(0, n), str(r.randint(0, 99999)))
        s = " ".join(ws)
        if r.random() < 0.3:
            s = s.capitalize()
        if r.random() < 0.3:
            s = r.choice(TASKS) + " " + s
        if r.random() < 0.2:
            s += r.choice(["?", ".", "!", ",", " ;", ":"])
        if r.random() < 0.05:
            s = s.replace(" ", "  ", 1)
        lines.append(s)
    return lines


def train():
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()),
        model_writer=buf,
        model_type="bpe",
        vocab_size=1000,
        character_coverage=0.9995,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        split_digits=True,
        byte_fallback=True,
        allow_whitespace_only_pieces=True,
        split_by_whitespace=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        user_defined_symbols=["\n"],  # Gemma has "\n" as one piece (108); here it gets id 4
        minloglevel=2,
    )
    m = sp_pb2.ModelProto()
    m.ParseFromString(buf.getvalue())
    # Append PaliGemma's extra pieces at the END of the piece list (as the real tokenizer does), as
    # USER_DEFINED pieces so that a literal "<loc0123>" in text maps to that one piece.
    for i in range(1024):
        p = m.pieces.add(); p.piece = f"<loc{i:04d}>"; p.score = 0.0
        p.type = sp_pb2.ModelProto.SentencePiece.USER_DEFINED
    for i in range(128):
        p = m.pieces.add(); p.piece = f"<seg{i:03d}>"; p.score = 0.0
        p.type = sp_pb2.ModelProto.SentencePiece.USER_DEFINED
    # No file paths or thread counts in the stored trainer spec (reproducibility).
    m.trainer_spec.ClearField("input")
    return m.SerializeToString()


def test_strings():
    r = prng(99)
    s = []
    for t in ["caption en", "caption es", "answer en what is this?", "answer en how many cats are there?",
              "question en where is the dog?", "detect cat", "detect cat ; dog", "detect red car ; person",
              "segment cat", "segment the big tree", "ocr", "describe en", "caption en\n",
              "answer en What color is the sky?\n", "detect person ; bicycle ; traffic light\n"]:
        s.append(t)
    s += [" ", "  ", "   ", "    ", "a  b", "a   b", " leading", "trailing ", "  both  ", "\t", "a\tb",
          "\n", "\n\n", "a\nb", "a\n\nb", "line1\nline2\n", " \n ", "\r\n", ""]
    s += ["0", "7", "12", "123", "2024", "3.14159", "1,000,000", "-42", "x1y2z3", "0000", "99 bottles",
          "phone 555-0199", "v1.2.3", "1e-5", "½", "²", "٣"]
    s += ["猫", "天空", "这是一只猫", "東京タワー", "고양이 사진", "写真", "漢字テスト", "中文 English mixed"]
    s += ["🙂", "🐱", "👍🏽", "🇫🇷", "👨‍👩‍👧", "emoji 🐶 dog", "✨✨", "❤️"]
    s += ["café", "naïve", "résumé", "über", "straße", "Ångström", "ñandú", "Ærø", "œuvre", "ﬁne",
          "e\u0301", "Å", "A\u030a", "ǅ", "İstanbul", "ß", "ΑΒΓ αβγ", "Привет мир", "עברית", "العربية",
          "हिन्दी", "ไทย"]
    s += ["\u0000", "\u0001", "\u007f", "\u00a0", "\u200b", "\ufeff", "\u2028", "\U0010ffff", "\ue000",
          "a\u0000b", "Ω≈ç√∫", "§±!@#$%^&*()", "~`|\\", "<", ">", "<>", "<<loc0001>>", "{}[]"]
    s += ["<loc0123>", "<seg045>", "<loc0000><loc0000><loc1023><loc1023> cat",
          "<loc0100><loc0200><loc0300><loc0400> dog ; <loc0010><loc0020><loc0030><loc0040> cat",
          "<loc0012><loc0034><loc0567><loc0890>" + "".join(f"<seg{i:03d}>" for i in range(16)) + " cat",
          "<loc1024>", "<loc123>", "<seg128>", "<seg45>", "<LOC0123>", "loc0123", "< loc0123>",
          "x<loc0005>y", "<loc0005> <seg127>", "<image>", "<image><image><bos>caption en\n", "<bos>",
          "<eos>", "<pad>", "<unk>", "<mask>", "<start_of_turn>"]
    pieces = WORDS + ACCENT + CJK
    while len(s) < 330:
        kind = r.randint(0, 5)
        n = r.randint(1, 10)
        ws = [r.choice(pieces) for _ in range(n)]
        if kind == 0:
            x = " ".join(ws)
        elif kind == 1:
            x = r.choice(TASKS) + " " + " ".join(ws)
        elif kind == 2:
            x = (" " * r.randint(1, 5)).join(ws)
        elif kind == 3:
            x = " ".join(ws) + "".join(r.choice("0123456789") for _ in range(r.randint(1, 8)))
        elif kind == 4:
            x = "".join(f"<loc{r.randint(0, 1023):04d}>" for _ in range(4)) + " " + " ".join(ws[:2])
        else:
            x = "\n".join(ws) + r.choice(["", "\n", " ", "🙂", "é"])
        s.append(x)
    return s


def main():
    model_bytes = train()
    tok_dir = os.path.join(FIX, "tokenizer")
    os.makedirs(tok_dir, exist_ok=True)
    with open(os.path.join(tok_dir, "tokenizer.model"), "wb") as f:
        f.write(model_bytes)
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    n_sp = sp.get_piece_size()

    from transformers import AddedToken, GemmaTokenizer, GemmaTokenizerFast
    tmp = tempfile.mkdtemp()
    try:
        shutil.copy(os.path.join(tok_dir, "tokenizer.model"), os.path.join(tmp, "tokenizer.model"))
        slow = GemmaTokenizer(vocab_file=os.path.join(tmp, "tokenizer.model"), add_bos_token=False,
                              add_eos_token=False)
        fast = GemmaTokenizerFast(vocab_file=os.path.join(tmp, "tokenizer.model"), add_bos_token=False,
                                  add_eos_token=False, from_slow=True)
        fast.add_special_tokens({"additional_special_tokens": [AddedToken("<image>", normalized=False,
                                                                          special=True)]})
        fast.model_max_length = 1 << 20
        out = os.path.join(tmp, "out")
        fast.save_pretrained(out, legacy_format=False)
        for name in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copy(os.path.join(out, name), os.path.join(tok_dir, name))
    finally:
        shutil.rmtree(tmp)
    image_id = fast.convert_tokens_to_ids("<image>")
    assert image_id == n_sp, (image_id, n_sp)
    assert sp.piece_to_id("<loc0000>") == n_sp - 1152 and sp.piece_to_id("<seg000>") == n_sp - 128

    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    strings = test_strings()
    sp_ids, hf_ids, disagree = [], [], []
    for i, t in enumerate(strings):
        a = sp.encode(t)
        b = hf.encode(t, add_special_tokens=False).ids
        sp_ids.append(a)
        hf_ids.append(b)
        if a != b:
            disagree.append(i)
    write_json(os.path.join(tok_dir, "cases.json"),
               {"strings": strings, "sp_ids": sp_ids, "hf_ids": hf_ids, "disagree": disagree})
    special = {
        "pad": 0, "eos": 1, "bos": 2, "unk": 3,
        "image": image_id, "loc0000": sp.piece_to_id("<loc0000>"), "seg000": sp.piece_to_id("<seg000>"),
        "newline": sp.piece_to_id("\n"), "newline_ids": sp.encode("\n"),
        "sp_vocab_size": n_sp, "hf_vocab_size": n_sp + 1,
        "byte_fallback_first": sp.piece_to_id("<0x00>"),
    }
    write_json(os.path.join(tok_dir, "special.json"), special, indent=1)
    print("tokenizer: sp vocab", n_sp, "image", image_id, "strings", len(strings), "disagree", disagree)


if __name__ == "__main__":
    main()
