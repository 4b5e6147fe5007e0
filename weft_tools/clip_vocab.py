"""Derive the CLIP BPE merges that Weft ships, from open-clip-torch's vocabulary file.

Stable Diffusion's text encoders (OpenAI CLIP-L, OpenCLIP ViT-H and bigG) share one byte-level
BPE vocabulary of 49,408 tokens. The PyPI wheel of ``open-clip-torch`` ships it as
``open_clip/bpe_simple_vocab_16e6.txt.gz`` (MIT licence). Only its first 48,894 merges are
used; the vocabulary itself follows from them (see ``nodes.diffusion.clip_text.clip_vocab``).
So the repository keeps just those merges, gzip-compressed (~0.4 MB), and this script
regenerates them::

    pip download --no-deps open-clip-torch==3.3.0 -d /tmp/oc
    python -m weft_tools.clip_vocab /tmp/oc/open_clip_torch-3.3.0-py3-none-any.whl
"""

from __future__ import annotations

import gzip
import io
import sys
import zipfile
from pathlib import Path

#: 49,408 tokens = 256 bytes + 256 bytes with "</w>" + merges + 2 specials
NUM_MERGES = 49408 - 2 * 256 - 2
TARGET = Path(__file__).resolve().parent.parent / "nodes" / "diffusion" / "configs" / "clip_bpe_merges.txt.gz"


def read_bpe(source: Path) -> list[str]:
    """The merge lines of a ``bpe_simple_vocab_16e6.txt.gz`` (or a wheel containing it)."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            data = wheel.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
    else:
        data = source.read_bytes()
    lines = gzip.decompress(data).decode("utf-8").split("\n")
    return lines[1 : 1 + NUM_MERGES]  # the first line is a "#version" header


def write_merges(merges: list[str], target: Path = TARGET) -> Path:
    """Write the merges gzip-compressed, deterministically (mtime 0) so rebuilds diff clean."""
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as out:
        out.write(("\n".join(merges) + "\n").encode("utf-8"))
    target.write_bytes(buffer.getvalue())
    return target


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    merges = read_bpe(Path(argv[0]))
    if len(merges) != NUM_MERGES:
        print(f"expected {NUM_MERGES} merges, found {len(merges)}")
        return 1
    print(write_merges(merges))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
