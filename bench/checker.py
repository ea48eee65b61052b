"""Precision and recall of the marketing-text compliance checker on the labelled corpus.

Run from the project root::

    .venv/bin/python bench/checker.py [--rules catalog/rules/marketing.yaml]
                                      [--corpus tests/compliance/corpus.yaml] [--holdout]
                                      [--split dev|test] [--quiet]

Prints precision and recall per rule family (rule id) and overall, at the level of
(sentence, rule id) labels and at sentence level (flagged or not), then every miss and
false alarm.  ``--holdout`` scores only the sentences marked ``holdout: true``;
``--split`` only those whose ``split`` is ``dev`` or ``test`` (tests/compliance/heldout.yaml);
a file whose sentences carry no ``split`` is scored whole, and ``--split`` on it is an error.
A sentence's ``products`` (catalog product codes) are passed to ``check``.  Only rule ids
that the labelled file uses somewhere are scored, so structural checks the file does not
label (R23.says_insurance, R2, R7) are left out rather than counted as false alarms.
``--quiet`` leaves out the list of misses and false alarms.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import yaml

from covernet.catalog.loader import load_catalog
from covernet.compliance.checker import check, load_rules

ROOT = Path(__file__).resolve().parents[1]


def ratio(num: int, den: int) -> str:
    return f"{num / den:.3f}" if den else "  -  "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=ROOT / "catalog/rules/marketing.yaml")
    parser.add_argument("--corpus", type=Path, default=ROOT / "tests/compliance/corpus.yaml")
    parser.add_argument("--holdout", action="store_true", help="score held-out sentences only")
    parser.add_argument("--split", choices=["dev", "test"], help="score one split only")
    parser.add_argument("--catalog", type=Path, default=ROOT / "catalog")
    parser.add_argument("--quiet", action="store_true", help="do not list misses")
    args = parser.parse_args()

    rules = load_rules(args.rules)
    data = yaml.safe_load(args.corpus.read_text("utf-8"))
    sentences = data["sentences"] if isinstance(data, dict) else data
    for s in sentences:
        s.setdefault("rules", [])
    scored = {rule_id for s in sentences for rule_id in s["rules"]}
    if args.holdout:
        sentences = [s for s in sentences if s.get("holdout")]
    if args.split:
        if not any("split" in s for s in sentences):
            parser.error(f"{args.corpus} has no splits: leave out --split to score it whole")
        sentences = [s for s in sentences if s.get("split") == args.split]
    catalog = {p.code: p for p in load_catalog(args.catalog).products}

    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    sent = Counter[str]()
    problems: list[str] = []
    started = time.perf_counter()
    for s in sentences:
        expected = set(s["rules"])
        products = [catalog[code] for code in s.get("products", [])]
        got = check(s["text"], rules=rules, products=products).rule_ids & scored
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
    if not args.quiet:
        print()
        print("\n".join(problems) if problems else "no misses, no false alarms")


if __name__ == "__main__":
    main()
