"""Write CLIP's BPE tokenizer (vocab.json + merges.txt) from open_clip's merges file.

SD 1.x uses OpenAI CLIP ViT-L/14's tokenizer, whose vocabulary is fully determined by the
BPE merges file that open-clip-torch ships. We ship the result in resources/ so that
single-file checkpoints and the self-test need no hub access.
Run: python packaging/tools/make_clip_tokenizer.py  (needs `pip install --no-deps open-clip-torch`).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "resources" / "sd15" / "tokenizer"


def bytes_to_unicode() -> dict[int, str]:
    # Same table as CLIP's simple_tokenizer: printable bytes map to themselves.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def main() -> None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or spec.origin is None:
        raise SystemExit("open-clip-torch is not installed: pip install --no-deps open-clip-torch")
    bpe = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "vocab.json").write_text(
        json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8"
    )
    (OUT / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    print(f"wrote {len(vocab)} tokens, {len(merges)} merges to {OUT}")


if __name__ == "__main__":
    main()
