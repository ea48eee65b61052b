"""Read the YAML catalog (``catalog/insurers/*.yaml``, ``catalog/products/*.yaml``).

Every file holds one insurer or one product.  Files are read in filename order and
validated with the models of :mod:`covernet.catalog.spec`; all problems in all files
are collected and raised together as one :class:`CatalogError`, each naming the file,
the field path and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from covernet.catalog.spec import Catalog, Insurer, Product
from covernet.core.errors import ValidationFailed

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

INSURERS_DIR = "insurers"
PRODUCTS_DIR = "products"
YAML_SUFFIXES = (".yaml", ".yml")

M = TypeVar("M", bound=BaseModel)


class CatalogError(ValidationFailed):
    """The catalog on disk is missing, unreadable or breaks a catalog rule."""

    code = "catalog_invalid"


@dataclass(frozen=True, slots=True)
class _Problem:
    file: str
    loc: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "loc": self.loc, "message": self.message}

    def __str__(self) -> str:
        where = f"{self.file}: {self.loc}" if self.loc else self.file
        return f"{where}: {self.message}"


class _StrictLoader(_SafeLoader):
    """A safe loader that refuses repeated keys (the last one would silently win)."""


def _mapping_without_repeats(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"repeated key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _mapping_without_repeats,
)


def _loc(parts: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in parts)


def _files(folder: Path, problems: list[_Problem]) -> list[Path]:
    if not folder.is_dir():
        problems.append(_Problem(str(folder), "", "directory is missing"))
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES),
        key=lambda p: p.name,
    )


def _read(path: Path, model: type[M], problems: list[_Problem]) -> M | None:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(_Problem(str(path), "", f"cannot read the file: {exc}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(_Problem(str(path), "", f"YAML syntax error: {exc}"))
        return None
    if not isinstance(data, dict):
        problems.append(
            _Problem(str(path), "", "expected a mapping with one " + model.__name__.lower())
        )
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            problems.append(_Problem(str(path), _loc(err["loc"]), err["msg"]))
        return None


def _reference_problems(
    insurers: list[tuple[Path, Insurer]],
    products: list[tuple[Path, Product]],
    *,
    all_insurers_loaded: bool,
) -> list[_Problem]:
    """Catalog-wide rules, checked here so that each problem names its file."""
    out: list[_Problem] = []
    first_insurer: dict[str, Path] = {}
    for path, insurer in insurers:
        if insurer.code in first_insurer:
            message = (
                f"insurer code {insurer.code} is already used by {first_insurer[insurer.code]}"
            )
            out.append(_Problem(str(path), "code", message))
        first_insurer.setdefault(insurer.code, path)
    first_product: dict[str, Path] = {}
    for path, product in products:
        if product.code in first_product:
            message = (
                f"product code {product.code} is already used by {first_product[product.code]}"
            )
            out.append(_Problem(str(path), "code", message))
        first_product.setdefault(product.code, path)
        if all_insurers_loaded and product.insurer not in first_insurer:
            out.append(_Problem(str(path), "insurer", f"unknown insurer {product.insurer}"))
    return out


def _raise(problems: list[_Problem]) -> NoReturn:
    lines = "\n".join(f"  {p}" for p in problems)
    raise CatalogError(
        f"the catalog is invalid ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n"
        + lines,
        detail={"errors": [p.as_dict() for p in problems]},
    )


def load_catalog(directory: Path) -> Catalog:
    """Load and validate the catalog under ``directory``; raise :class:`CatalogError`."""
    directory = Path(directory)
    if not directory.is_dir():
        _raise([_Problem(str(directory), "", "catalog directory is missing")])
    problems: list[_Problem] = []
    insurers: list[tuple[Path, Insurer]] = []
    for path in _files(directory / INSURERS_DIR, problems):
        insurer = _read(path, Insurer, problems)
        if insurer is not None:
            insurers.append((path, insurer))
    # An unknown insurer is only reported when every insurer file loaded.
    all_insurers_loaded = not problems
    products: list[tuple[Path, Product]] = []
    for path in _files(directory / PRODUCTS_DIR, problems):
        product = _read(path, Product, problems)
        if product is not None:
            products.append((path, product))
    problems.extend(
        _reference_problems(insurers, products, all_insurers_loaded=all_insurers_loaded)
    )
    if problems:
        _raise(problems)
    try:
        return Catalog(insurers=[i for _, i in insurers], products=[p for _, p in products])
    except ValidationError as exc:
        _raise(
            [
                _Problem(str(directory), _loc(err["loc"]), err["msg"])
                for err in exc.errors(include_url=False)
            ]
        )


def _canonical_json(model: BaseModel) -> bytes:
    data = model.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8"
    )


def product_digest(product: Product) -> str:
    """A stable sha256 (hex) of one product's canonical JSON: changes with any change."""
    return hashlib.sha256(_canonical_json(product)).hexdigest()


def catalog_digest(catalog: Catalog) -> str:
    """A stable sha256 (hex) of the whole catalog's canonical JSON."""
    return hashlib.sha256(_canonical_json(catalog)).hexdigest()


__all__ = ["CatalogError", "catalog_digest", "load_catalog", "product_digest"]
