"""How well the assistant answers: the labelled questions of
``tests/consult/assistant_questions.yaml`` against the shipped catalog and knowledge base.

```sh
.venv/bin/python bench/assistant.py              # figures per split at the configured threshold
.venv/bin/python bench/assistant.py --calibrate  # threshold sweep on the dev split only
.venv/bin/python bench/assistant.py --show dev   # every dev question with its outcome
```

Per split it prints top-1 accuracy (answerable questions answered with the labelled
article), the hand-off rate (all questions), the false-answer rate (answered questions
whose article is not the labelled one, or that should have been handed off), wrong
hand-offs (answerable questions handed off) and the latency of one question through
``assistant.ask`` (ranking plus the log row) in its own unit of work on SQLite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "tests" / "consult" / "assistant_questions.yaml"
HANDOFF = "handoff"


@dataclass
class Figures:
    split: str
    total: int = 0
    answerable: int = 0
    correct: int = 0
    answered: int = 0
    false_answers: int = 0
    handed_off: int = 0
    wrong_handoffs: int = 0
    advice_answered: int = 0
    misses: list[tuple[str, str, str, float]] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / self.answerable if self.answerable else 0.0

    @property
    def handoff_rate(self) -> float:
        return self.handed_off / self.total if self.total else 0.0

    @property
    def false_answer_rate(self) -> float:
        return self.false_answers / self.answered if self.answered else 0.0


def labelled() -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = yaml.safe_load(QUESTIONS.read_text("utf-8"))
    return data


def evaluate(
    db: Any, split: str, items: list[dict[str, Any]], threshold: float | None = None
) -> Figures:
    """Score ``items`` with :func:`assistant.decide` (no writes)."""
    from covernet.consult import assistant

    out = Figures(split)
    for item in items:
        expect = item["expect"]
        decision = assistant.decide(db, item["q"], threshold=threshold)
        got = decision.article.id if decision.article else HANDOFF
        if got in item.get("also", ()):
            got = expect  # another article that answers it just as well
        out.total += 1
        if expect != HANDOFF:
            out.answerable += 1
        if decision.handed_off:
            out.handed_off += 1
            if expect != HANDOFF:
                out.wrong_handoffs += 1
        else:
            out.answered += 1
            if got != expect:
                out.false_answers += 1
                if decision.outcome.value == "advice":
                    out.advice_answered += 1
        if got == expect and expect != HANDOFF:
            out.correct += 1
        if got != expect:
            out.misses.append((item["q"], expect, got, decision.confidence))
    return out


def _database(tmp: str) -> str:
    from covernet.catalog.loader import load_catalog
    from covernet.catalog.service import load_into_db
    from covernet.core.db import unit_of_work
    from covernet.core.migrate import upgrade

    url = f"sqlite:///{tmp}/assistant.db"
    os.environ["COVERNET_DATABASE_URL"] = url
    upgrade(url)
    with unit_of_work(url) as db:
        load_into_db(db, load_catalog(ROOT / "catalog"))
    return url


def latency(url: str, questions: list[str]) -> list[float]:
    from covernet.consult import assistant
    from covernet.core.db import unit_of_work

    times = []
    for i, q in enumerate(questions):
        started = time.perf_counter()
        with unit_of_work(url) as db:
            assistant.ask(db, q, client=f"bench-{i}")
        times.append((time.perf_counter() - started) * 1000)
    return times


def _row(f: Figures) -> str:
    return (
        f"{f.split:<6}{f.total:>5}{f.answerable:>7}   {100 * f.accuracy:6.1f}%"
        f"   {100 * f.handoff_rate:6.1f}%   {100 * f.false_answer_rate:6.1f}%"
        f" ({f.false_answers}/{f.answered})"
        f"   {f.wrong_handoffs:>4}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calibrate", action="store_true", help="threshold sweep on dev only")
    p.add_argument("--show", choices=["dev", "test"], help="list the misses of a split")
    args = p.parse_args(argv)
    os.environ.setdefault("COVERNET_ENV", "test")
    sys.path.insert(0, str(ROOT / "src"))
    from covernet.catalog.service import snapshot
    from covernet.consult import knowledge
    from covernet.core.db import unit_of_work

    data = labelled()
    with tempfile.TemporaryDirectory(prefix="covernet-assistant-") as tmp:
        url = _database(tmp)
        with unit_of_work(url) as db:
            started = time.perf_counter()
            knowledge.index_for(snapshot(db), "zh")
            warm_ms = (time.perf_counter() - started) * 1000
            if args.calibrate:
                print("dev split: threshold sweep (high accuracy with few false answers)")
                print("threshold  accuracy  hand-off  false-answer  wrong hand-offs")
                for t in [x / 100 for x in range(10, 62, 2)]:
                    f = evaluate(db, "dev", data["dev"], threshold=t)
                    print(
                        f"{t:9.2f}  {100 * f.accuracy:7.1f}%  {100 * f.handoff_rate:7.1f}%"
                        f"  {100 * f.false_answer_rate:11.1f}%  {f.wrong_handoffs:>15}"
                    )
                return 0
            figures = [evaluate(db, split, data[split]) for split in ("dev", "test")]
        cfg = knowledge.config()
        print(
            f"assistant quality at threshold {cfg.confidence.threshold} "
            f"(scale {cfg.confidence.scale}, margin weight {cfg.confidence.margin_weight})"
        )
        print("split  qns  answ.   top-1 acc  hand-off   false-answer        wrong hand-offs")
        for f in figures:
            print(_row(f))
        for f in figures:
            if f.advice_answered:
                print(f"!! {f.split}: {f.advice_answered} advice questions answered")
        if args.show:
            shown = next(f for f in figures if f.split == args.show)
            for q, expect, got, conf in shown.misses:
                print(f"  {q!r:40} expected {expect:30} got {got:30} conf {conf:.3f}")
        all_q = [i["q"] for split in ("dev", "test") for i in data[split]]
        times = latency(url, all_q)
        times.sort()
        p90 = times[int(0.9 * (len(times) - 1))]
        print(
            f"latency per question through ask() (rank + log row, SQLite): "
            f"median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms, max {times[-1]:.1f} ms "
            f"over {len(times)}; first index build (jieba dictionary + catalog) {warm_ms:.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
