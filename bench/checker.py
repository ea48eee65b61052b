"""Precision and recall of the marketing-text compliance checker on the labelled corpus.

Run from the project root::

    .venv/bin/python bench/checker.py [--rules catalog/rules/marketing.yaml]
                                      [--corpus tests/compliance/corpus.yaml] [--holdout]

Prints precision and recall per rule family (rule id) and overall, at the level of
(sentence, rule id) labels and at sentence level (flagged or not), then every miss and
false alarm.  ``--holdout`` scores only the sentences marked ``holdout: true``.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import yaml

from covernet.compliance.checker import check, load_rules

ROOT = Path(__file__).resolve().parents[1]


def ratio(num: int, den: int) -> str:
    return f"{num / den:.3f}" if den else "  -  "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=ROOT / "catalog/rules/marketing.yaml")
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests/compliance/corpus.yaml")
    parser.add_argument("--holdout", action="store_true", help="score held-out sentences only")
    args = parser.parse_args()

    rules = load_rules(args.rules)
    sentences = yaml.safe_load(args.corpus.read_text("utf-8"))["sentences"]
    if args.holdout:
        sentences = [s for s in sentences if s.get("holdout")]

    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    sent = Counter[str]()
    problems: list[str] = []
    started = time.perf_counter()
    for s in sentences:
        expected = set(s["rules"])
        got = check(s["text"], rules=rules).rule_ids
        for rule_id in expected & got:
            tp[rule_id] += 1
        for rule_id in expected - got:
            fn[rule_id] += 1
            problems.append(f"MISS  {rule_id:<26} {s['text']}")
        for rule_id in got - expected:
            fp[rule_id] += 1
            problems.append(f"FALSE {rule_id:<26} {s['text']}")
        key = ("bad" if expected else "ok") + ("_flagged" if got else "_passed")
        sent[key] += 1
    elapsed = time.perf_counter() - started

    compliant = sent["ok_flagged"] + sent["ok_passed"]
    print(
        f"rules v{rules.version}: {len(sentences)} sentences, {compliant} compliant, "
        f"{elapsed * 1000 / max(1, len(sentences)):.2f} ms per check"
    )
    print(f"{'family':<26} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>10} {'recall':>8}")
    for family in sorted(set(tp) | set(fp) | set(fn)):
        print(
            f"{family:<26} {tp[family]:>4} {fp[family]:>4} {fn[family]:>4} "
            f"{ratio(tp[family], tp[family] + fp[family]):>10} "
            f"{ratio(tp[family], tp[family] + fn[family]):>8}"
        )
    t, f, n = sum(tp.values()), sum(fp.values()), sum(fn.values())
    print(
        f"{'overall (labels)':<26} {t:>4} {f:>4} {n:>4} {ratio(t, t + f):>10} {ratio(t, t + n):>8}"
    )
    flagged = sent["bad_flagged"]
    print(
        f"{'overall (sentences)':<26} {flagged:>4} {sent['ok_flagged']:>4} "
        f"{sent['bad_passed']:>4} {ratio(flagged, flagged + sent['ok_flagged']):>10} "
        f"{ratio(flagged, flagged + sent['bad_passed']):>8}"
    )
    print()
    print("\n".join(problems) if problems else "no misses, no false alarms")


if __name__ == "__main__":
    main()
