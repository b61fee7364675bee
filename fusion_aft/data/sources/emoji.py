"""Emoji image–caption pairs rendered from Debian's Noto Color Emoji font.

Each record is one fully-qualified, single-code-point emoji from
``/usr/share/unicode/emoji/emoji-test.txt`` (Debian ``unicode-data``) that the font
``/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf`` (``fonts-noto-color-emoji``, OFL-1.1) has a
glyph for. Fields: ``image`` (RGB, ``image_size`` px, rendered with Pillow at size 109 with
``embedded_color=True`` onto white, then resized) and ``text`` (``unicodedata.name(ch).lower()``;
for the few code points newer than Python's Unicode tables, the name from emoji-test.txt).
The label is the emoji's Unicode group.

Groups with fewer than :data:`MIN_GROUP` such emoji are dropped: with Debian bookworm's data
that is only ``Flags`` (4 single-code-point flags); ``Component`` has no fully-qualified entries.
That leaves 1166 emoji in 8 groups. The train/test split is stratified by group and seeded.
Images are rendered lazily in whichever process reads them (DataLoader workers included).
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from fusion_aft.data.records import Dataset, Split
from fusion_aft.data.registry import register_dataset
from fusion_aft.data.select import stratified_partition
from fusion_aft.data.sources._common import require_file
from fusion_aft.fileio import file_sha256

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_TEST = Path("/usr/share/unicode/emoji/emoji-test.txt")
FONT_INSTALL = "sudo apt-get install fonts-noto-color-emoji"
DATA_INSTALL = "sudo apt-get install unicode-data"
FONT_SIZE = 109  # the size of the font's bitmap strikes; other sizes are refused by FreeType
MIN_GROUP = 10


def check() -> None:
    require_file(FONT, FONT_INSTALL)
    require_file(EMOJI_TEST, DATA_INSTALL)


@functools.lru_cache(maxsize=1)
def _font_codepoints() -> frozenset[int]:
    from fontTools.ttLib import TTFont

    return frozenset(TTFont(str(FONT), lazy=True).getBestCmap())


@functools.lru_cache(maxsize=1)
def _font_sha256() -> str:
    return file_sha256(FONT)


@functools.lru_cache(maxsize=1)
def catalogue() -> tuple[tuple[int, str, str], ...]:
    """``(code point, caption, group)`` of every renderable single-code-point emoji, in file order."""
    check()
    renderable = _font_codepoints()
    out = []
    group = ""
    for line in EMOJI_TEST.read_text(encoding="utf8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
            continue
        if not line.strip() or line.startswith("#"):
            continue
        points, rest = line.split(";", 1)
        status, _, comment = rest.partition("#")
        codes = points.split()
        if len(codes) != 1 or status.strip() != "fully-qualified":
            continue
        cp = int(codes[0], 16)
        if cp not in renderable:
            continue
        # comment: " 😀 E1.0 grinning face"
        fallback = comment.strip().split(" ", 2)[-1]
        caption = unicodedata.name(chr(cp), fallback).lower()
        out.append((cp, caption, group))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _font():
    from PIL import ImageFont

    return ImageFont.truetype(str(FONT), FONT_SIZE)


def render(codepoint: int, size: int) -> object:
    """The emoji as an RGB PIL image of ``size``×``size`` on white."""
    from PIL import Image, ImageDraw

    font = _font()
    ch = chr(codepoint)
    left, top, right, bottom = font.getbbox(ch)
    canvas = Image.new("RGBA", (max(1, right - left), max(1, bottom - top)), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((-left, -top), ch, font=font, embedded_color=True)
    side = max(canvas.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(canvas, ((side - canvas.width) // 2, (side - canvas.height) // 2))
    return square.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


class _Fields:
    """``i -> {"image", "text"}`` for a list of (code point, caption); renders on demand."""

    def __init__(self, items: list[tuple[int, str]], size: int) -> None:
        self.items = items
        self.size = size

    def __call__(self, i: int) -> dict:
        cp, caption = self.items[i]
        return {"image": render(cp, self.size), "text": caption}


class _Digest:
    """Font file, code point, size, caption and label: all that determines a record."""

    def __init__(self, items: list[tuple[int, str]], labels: list[int], size: int, font_sha: str) -> None:
        self.items = items
        self.labels = labels
        self.prefix = f"emoji|{font_sha}|{FONT_SIZE}|{size}|".encode()

    def __call__(self, i: int) -> bytes:
        cp, caption = self.items[i]
        payload = self.prefix + f"{cp:X}|{caption}|{self.labels[i]}".encode()
        return hashlib.blake2b(payload, digest_size=16).digest()


@register_dataset(
    "emoji",
    fields=("image", "text"),
    summary="Noto emoji images paired with their Unicode names; label = Unicode emoji group",
    check=check,
    cheap=True,
)
def emoji(image_size: int = 64, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Emoji image–caption pairs; ``test_fraction`` of each group goes to ``test`` (seeded)."""
    from fusion_aft.errors import UserInputError

    if not 8 <= int(image_size) <= 512:
        raise UserInputError(f"emoji image_size must be between 8 and 512, got {image_size}")
    if not 0.0 < test_fraction < 1.0:
        raise UserInputError(f"emoji test_fraction must be between 0 and 1, got {test_fraction}")
    entries = catalogue()
    sizes = Counter(g for _, _, g in entries)
    kept_groups = [g for g in dict.fromkeys(g for _, _, g in entries) if sizes[g] >= MIN_GROUP]
    classes = kept_groups
    rows = [(cp, cap, classes.index(g)) for cp, cap, g in entries if g in kept_groups]
    labels = np.array([r[2] for r in rows])
    train_idx, test_idx = stratified_partition(labels, int(round(test_fraction * len(rows))), seed)
    font_sha = _font_sha256()

    def split(name: str, index: np.ndarray) -> Split:
        items = [(rows[i][0], rows[i][1]) for i in index]
        own = [int(labels[i]) for i in index]
        return Split(
            name,
            [f"emoji-{cp:05X}" for cp, _ in items],
            own,
            _Fields(items, int(image_size)),
            _Digest(items, own, int(image_size), font_sha),
        )

    return Dataset(
        name="emoji",
        splits={"train": split("train", train_idx), "test": split("test", test_idx)},
        classes=classes,
        fields=("image", "text"),
        description="Noto Color Emoji renderings with Unicode names; label = emoji group",
        meta={
            "font": str(FONT),
            "font_sha256": font_sha,
            "dropped_groups": {g: n for g, n in sizes.items() if n < MIN_GROUP},
        },
    )
