"""The benchmark report's ranking section renders ranking.json beside the ablation."""

from __future__ import annotations

import json

from fusion_aft.bench.ranking_section import ranking_section


def test_section_rows_and_absence(tmp_path) -> None:
    assert ranking_section(tmp_path) == []
    row = {
        "task": "rotten_tomatoes",
        "default_rule": {
            "recommended": ["all-minilm-l6-v2", "glove-6b-50d"], "acc": 0.633, "acc_se": 0.009,
            "best": ["all-minilm-l6-v2", "paraphrase-minilm-l3-v2"], "best_acc": 0.637, "best_se": 0.003,
            "within_1se": True,
        },
        "spearman": 0.32, "n_subsets": 7, "rank_seconds_cached": 4.25,
    }
    (tmp_path / "ranking.json").write_text(json.dumps([row]))
    md = ranking_section(tmp_path)
    assert md[0] == "## Teacher ranking before training"
    (line,) = [m for m in md if m.startswith("| rotten_tomatoes")]
    assert line == (
        "| rotten_tomatoes | all-minilm-l6-v2 + glove-6b-50d | 63.3 ± 0.9 | all-minilm-l6-v2 + "
        "paraphrase-minilm-l3-v2 | 63.7 ± 0.3 | yes | +0.32 (7 subsets) | 4.2 |"
    )
    (tmp_path / "ranking.json").write_text("{not json")
    assert ranking_section(tmp_path) == []
