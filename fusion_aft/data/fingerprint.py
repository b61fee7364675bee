"""Dataset fingerprints: what a feature bank is keyed by.

A split's fingerprint is a sha256 over its ordered sample ids and a 16-byte digest of each
record's content (fields and label). Reordering, adding, removing or editing one record changes
it, so a bank built for one version of a split is never reused for another. Sources may supply a
cheap per-record ``content_digest`` (the raw bytes of an idx row, a file's bytes, the code point
and render settings of an emoji); the default hashes the loaded fields.

The per-record digests are kept (as ``uint64`` prefixes) so a stale bank can say *which* record
changed. Results are cached on the split object.
"""

from __future__ import annotations

import hashlib

import numpy as np

from fusion_aft.data.digest import digest_fields
from fusion_aft.data.records import Split

__all__ = ["FINGERPRINT_VERSION", "dataset_fingerprint", "digest_fields", "record_digests"]

FINGERPRINT_VERSION = 1
_CACHE_ATTR = "_fusion_aft_fingerprint"


def _compute(split: Split) -> tuple[str, np.ndarray]:
    h = hashlib.sha256(f"fusion-aft-dataset-v{FINGERPRINT_VERSION}\0".encode())
    h.update(len(split).to_bytes(8, "little"))
    prefixes = np.empty(len(split), dtype="<u8")
    for i, sample_id in enumerate(split.ids):
        digest = split.content_digest(i)
        encoded = sample_id.encode("utf-8")
        h.update(len(encoded).to_bytes(4, "little"))
        h.update(encoded)
        h.update(digest)
        prefixes[i] = int.from_bytes(digest[:8], "little")
    return h.hexdigest(), prefixes


def _cached(split: Split) -> tuple[str, np.ndarray]:
    cached = split.__dict__.get(_CACHE_ATTR)
    if cached is None:
        cached = _compute(split)
        split.__dict__[_CACHE_ATTR] = cached
    return cached


def dataset_fingerprint(split: Split) -> str:
    """The split's fingerprint (64 hex digits), computed once per split object."""
    return _cached(split)[0]


def record_digests(split: Split) -> np.ndarray:
    """``uint64[len(split)]``: the first 8 bytes of each record's content digest, in split order."""
    return _cached(split)[1]
