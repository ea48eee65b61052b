"""Shared helpers for the catalog tests: the shipped catalog and scratch copies of it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from covernet.catalog.loader import load_catalog
from covernet.catalog.spec import Catalog, Insurer, Product

CATALOG_DIR = Path(__file__).resolve().parents[2] / "catalog"


@cache
def shipped() -> Catalog:
    return load_catalog(CATALOG_DIR)


def product(code: str) -> Product:
    return next(p for p in shipped().products if p.code == code)


def insurer_of(item: Product) -> Insurer:
    return next(i for i in shipped().insurers if i.code == item.insurer)


def product_data(code: str) -> dict[str, Any]:
    """The raw YAML mapping of a shipped product."""
    data = yaml.safe_load((CATALOG_DIR / "products" / f"{code}.yaml").read_text("utf-8"))
    assert isinstance(data, dict)
    return data


def make_product(code: str, **changes: Any) -> Product:
    """A validated variant of a shipped product with top-level fields replaced."""
    data = product_data(code)
    data.update(changes)
    return Product.model_validate(data)


def scratch_catalog(tmp_path: Path) -> Path:
    """A private copy of the shipped catalog that a test may break."""
    target = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, target)
    return target


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text("utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
