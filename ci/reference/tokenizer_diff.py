#!/usr/bin/env python3
"""Reference token ids from tiktoken (Llama-3) and sentencepiece (Llama-2),
for differential tests of bitnet-core's tokenizers.

    # ids for a JSON list of strings (prints JSON to stdout)
    python3 ci/reference/tokenizer_diff.py ids tests/tokenizer/corpus.json \
        > tests/tokenizer/reference_ids.json

    # regenerate the corpus itself (deterministic)
    python3 ci/reference/tokenizer_diff.py corpus > tests/tokenizer/corpus.json

Needs tiktoken and sentencepiece at the versions pinned in
ci/reference/requirements.txt (`bash ci/reference/python-deps.sh` installs
them). Data files come from ../shared/data (override with --data DIR or
BITNET_SHARED_DATA).

Output of `ids`:
    {"header": {...command, versions...},
     "llama3": [[ids of case 0], ...],      # tiktoken encode_ordinary
     "llama2_spm": [[ids of case 0], ...]}  # sentencepiece encode, no BOS
The Rust test `core/tests/tokenizer_diff.rs` compares against the checked-in
file, or against any file named by BITNET_TOKENIZER_DIFF. CI
(ci/reference/tokenizer_diff_live.sh) regenerates both files into
target/tokenizer-diff/, runs the Rust test on the fresh ids, and fails when
the checked-in files differ from them.
"""

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Meta's Llama-3 pre-tokenizer pattern (llama3/tokenizer.py).
LLAMA3_PAT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

REGEN = "python3 ci/reference/tokenizer_diff.py ids tests/tokenizer/corpus.json > tests/tokenizer/reference_ids.json"


def data_dir(arg):
    if arg:
        return Path(arg)
    env = os.environ.get("BITNET_SHARED_DATA")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data"


def make_corpus(data):
    """A few hundred strings that stress pre-tokenizers and merges."""
    lines = (data / "tinyshakespeare.txt").read_text(encoding="utf-8").split("\n")
    corpus = []
    # Every 97th line of tinyshakespeare, including empty ones.
    corpus += lines[::97][:150]
    # A multi-line passage (newlines inside a case).
    corpus.append("\n".join(lines[0:12]))
    corpus.append("\n".join(lines[100:130]) + "\n")
    # Code.
    corpus += [
        "def f(x):\n    return x**2 + 1\n",
        "fn main() {\n\tprintln!(\"{}\", 1_000_000);\n}\n",
        "for (int i = 0; i < n; ++i) { a[i] += b[i] * 3.14159; }",
        "if x != None and y >= 0x1F: print(f'{x!r:>10}')",
        "<div class=\"a\">&nbsp;&lt;tag&gt;</div>",
        "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
        "    indented\n        more\n\ttab\n",
        "#include <stdio.h>\r\nint main(void){return 0;}\r\n",
        "$ cargo test -p bitnet-core -- --nocapture 2>&1 | tee log.txt",
        "x=>y; a->b; c<=d; e||f; g&&h; i^=j; ~k; l|m",
        "https://example.com/path?query=1&b=%20#frag",
    ]
    # Digits.
    corpus += [
        "1", "12", "123", "1234", "12345", "123456", "1234567",
        "3.14159265358979323846264338327950288419716939937510",
        "0000000000000000000000000000000",
        "9" * 100,
        "phone: +1 (555) 123-4567, zip 90210-1234",
        "١٢٣٤٥ ٦٧٨٩٠", "一二三 4５6", "²³ ½ ⅓ Ⅻ",
        "v1.2.3-rc4+build.5678",
    ]
    # Whitespace runs.
    corpus += [
        " ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n",
        " \n", "  \n  ", "a  b", "a   b", "a \t b", "a\t\tb", "a \n b", "a\n\n\tb",
        "end   ", "   start", "  both  ", "x\r\ny\r\n", "line1\rline2",
        "nbsp\u00a0here", "two\u00a0\u00a0nbsp", "ideo\u3000space", "\u3000\u3000lead",
        "em\u2003space en\u2002space", "nl\u0085next", "ls\u2028ps\u2029",
        "\u00a0", " \u00a0 ", "tab\tand space \t mix",
    ]
    # Contractions in every case. Sorted: a set's order changes with
    # PYTHONHASHSEED, and the corpus must be the same on every run.
    for c in ["s", "t", "re", "ve", "m", "ll", "d"]:
        for form in sorted({c, c.upper(), c.capitalize(), c[0] + c[1:].upper()}):
            corpus.append(f"it'{form} x")
    corpus += [
        "I'm you're he's she'd we'll they've don't",
        "I'M YOU'RE HE'S SHE'D WE'LL THEY'VE DON'T",
        "'s 't 're 've 'm 'll 'd", "''s '''t", "rock'n'roll", "O'Neil's",
        "l'été d'un",
    ]
    # Emoji, ZWJ, flags, skin tones.
    corpus += [
        "🦙", "🦙🦙🦙", "hello 👋 world 🌍", "👨‍👩‍👧‍👦 family", "👍🏽 ok",
        "🇫🇷🇩🇪 flags", "❤️ heart", "a🦙b", "🏳️‍🌈", "1️⃣2️⃣",
    ]
    # CJK, RTL, combining marks, other scripts.
    corpus += [
        "日本語のテキストです。", "中文分词测试，标点符号！", "한국어 텍스트입니다",
        "漢字かなカナ混じり文", "مرحبا بالعالم", "שלום עולם", "سلام، دنیا!",
        "e\u0301 cafe\u0301 nai\u0308ve", "a\u0300\u0301\u0302\u0303", "\u0301start",
        "Ελληνικά κείμενα", "Русский текст, ёЁ.", "ภาษาไทย", "हिन्दी भाषा",
        "Ａｌｐｈａ　ｗｉｄｅ", "ﬁ ﬂ ligatures", "Zürich Straße Äpfel",
        "mixed English 日本 العربية 123",
    ]
    # Punctuation and symbols.
    corpus += [
        "...", "!!!???", "«quotes» „German“ “curly” ‘single’", "—dash–en-dash-",
        "a.b,c;d:e", "@#$%^&*()_+", "~`|\\", "[]{}<>", "©®™ § ¶ †‡ •",
        "∑∫√∞≠≤≥", "€100 £5 ¥30 ₹7", "<|endoftext|>", "<|eot_id|>",
        "<s> </s> <unk>", "<0x41>",
    ]
    # Llama-3 tokens reachable only through a merge whose side ranks above
    # the result (e.g. " nghiệ", "ерату", "ující" inside longer words): they
    # need the complete merge list that Vocab::from_tiktoken derives.
    corpus += [" nghiệs", "xерату", "xující"]
    # Tinyshakespeare with runs of blank lines.
    corpus.append("\n\n".join(lines[200:210]))
    return corpus


def load_llama3(data):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(data / "llama3-tokenizer.model"))
    return tiktoken.Encoding(
        name="llama3", pat_str=LLAMA3_PAT, mergeable_ranks=ranks, special_tokens={}
    )


def load_llama2(data):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(data / "llama2-tokenizer.model"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="directory with llama3-tokenizer.model etc.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("corpus", help="print the corpus as JSON")
    p = sub.add_parser("ids", help="print reference ids for a JSON list of strings")
    p.add_argument("strings", help="JSON file: a list of strings")
    args = ap.parse_args()
    data = data_dir(args.data)

    if args.cmd == "corpus":
        json.dump(make_corpus(data), sys.stdout, ensure_ascii=False, indent=0)
        sys.stdout.write("\n")
        return

    import sentencepiece
    import tiktoken

    strings = json.loads(Path(args.strings).read_text(encoding="utf-8"))
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        sys.exit("input must be a JSON list of strings")
    enc = load_llama3(data)
    sp = load_llama2(data)
    out = {
        "header": {
            "command": REGEN,
            "tiktoken": tiktoken.__version__,
            "sentencepiece": sentencepiece.__version__,
            "llama3": "tiktoken encode_ordinary, ranks llama3-tokenizer.model, Meta's Llama-3 pattern",
            "llama2_spm": "sentencepiece encode (no BOS), llama2-tokenizer.model",
            "count": len(strings),
        },
        "llama3": [enc.encode_ordinary(s) for s in strings],
        "llama2_spm": [sp.encode(s) for s in strings],
    }
    # One case per line keeps diffs of the checked-in file readable.
    sys.stdout.write("{\n")
    sys.stdout.write('"header": ' + json.dumps(out["header"], ensure_ascii=False) + ",\n")
    for i, key in enumerate(["llama3", "llama2_spm"]):
        sys.stdout.write(f'"{key}": [\n')
        rows = [json.dumps(ids) for ids in out[key]]
        sys.stdout.write(",\n".join(rows))
        sys.stdout.write("\n]" + (",\n" if i == 0 else "\n"))
    sys.stdout.write("}\n")


if __name__ == "__main__":
    main()
