"""Referral rewards: configuration only, validated against the rules.

A reward is gifted cover within R12 (a giftable accident or health product, at most 100
yuan per person for the whole gift) or a non-monetary service perk. Cash, rebates,
discounts outside the filed premium, points worth money and the like are benefits
outside the contract and are refused (R4). Granting rewards is not done here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from covernet.catalog.loader import load_catalog
from covernet.catalog.spec import GIFT_MAX_PREMIUM_FEN, Catalog, Line, payments_in
from covernet.core.config import get_settings
from covernet.core.errors import ValidationFailed

FILE = Path("rules") / "referrals.yaml"
GIFT_LINES = frozenset({Line.accident, Line.medical})
# Benefits outside the contract (R4): refused by name, with the rule in the message.
REFUSED_KINDS = frozenset(
    {"cash", "cash_rebate", "rebate", "discount", "coupon", "voucher", "points", "red_envelope"}
)
MONEY_WORDS = ("现金", "返现", "返利", "折扣", "打折", "红包", "优惠券", "积分抵", "cash", "rebate")


class _Reward(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1, max_length=100)


class GiftCover(_Reward):
    kind: Literal["gift_cover"]
    product: str = Field(min_length=1, max_length=64)
    plan: str = Field(min_length=1, max_length=64)


class ServicePerk(_Reward):
    kind: Literal["service_perk"]
    description: str = Field(min_length=2, max_length=300)

    @model_validator(mode="after")
    def _not_money(self) -> ServicePerk:
        text = f"{self.title} {self.description}".lower()
        for word in MONEY_WORDS:
            if word in text:
                raise ValueError(
                    f"a service perk is not money: '{word}' is a benefit outside the contract (R4)"
                )
        return self


Reward = Annotated[GiftCover | ServicePerk, Field(discriminator="kind")]


class RewardsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rewards: list[Reward] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _refuse_money(cls, data: Any) -> Any:
        for i, item in enumerate((data or {}).get("rewards") or []):
            kind = str(item.get("kind", "")) if isinstance(item, dict) else ""
            if kind not in ("gift_cover", "service_perk"):
                refused = kind in REFUSED_KINDS or any(w in kind for w in ("cash", "rebate"))
                why = "is a benefit outside the contract" if refused else "is not allowed"
                raise ValueError(
                    f"rewards[{i}]: kind '{kind}' {why} (R4: only gift_cover within R12 "
                    "or a non-monetary service_perk)"
                )
        return data


def _refused(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="referral_reward_refused", detail={"file": str(FILE)})


def _check_gift(reward: GiftCover, catalog: Catalog, i: int) -> None:
    product = next((p for p in catalog.products if p.code == reward.product), None)
    if product is None:
        raise _refused(f"rewards[{i}]: no product '{reward.product}' in the catalog")
    if product.line not in GIFT_LINES:
        raise _refused(
            f"rewards[{i}]: {product.code} is {product.line.value} cover; only accident or "
            "health cover may be gifted, never property (R12)"
        )
    if not product.giftable:
        raise _refused(f"rewards[{i}]: {product.code} is not giftable (R12)")
    plan = next((p for p in product.plans if p.code == reward.plan), None)
    if plan is None:
        raise _refused(f"rewards[{i}]: {product.code} has no plan '{reward.plan}'")
    for row in plan.premiums:
        for term in product.terms_options:
            for payment in product.payment_options:
                if row.term not in (None, term.code) or row.payment not in (None, payment.code):
                    continue
                total = row.premium_fen * payments_in(term, payment)
                if total > GIFT_MAX_PREMIUM_FEN:
                    raise _refused(
                        f"rewards[{i}]: gifted cover costs at most 100 yuan per person (R12); "
                        f"{product.code}/{plan.code} costs {total} fen over {term.code}"
                    )


def parse(data: Any, catalog: Catalog) -> RewardsConfig:
    """Validate a rewards document against the rules and the catalog."""
    try:
        config = RewardsConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise _refused(f"{where + ': ' if where else ''}{message}") from None
    codes = [r.code for r in config.rewards]
    if len(codes) != len(set(codes)):
        raise _refused("reward codes repeat")
    for i, reward in enumerate(config.rewards):
        if isinstance(reward, GiftCover):
            _check_gift(reward, catalog, i)
    return config


def load(directory: Path, catalog: Catalog | None = None) -> RewardsConfig:
    path = Path(directory) / FILE
    if not path.is_file():
        return RewardsConfig()
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return parse(data, catalog if catalog is not None else load_catalog(directory))


_cache: dict[tuple[str, float], RewardsConfig] = {}


def current() -> RewardsConfig:
    """The configured rewards (re-read when the file changes)."""
    directory = Path(get_settings().catalog_dir)
    path = directory / FILE
    key = (str(path), path.stat().st_mtime if path.is_file() else 0.0)
    found = _cache.get(key)
    if found is None:
        found = _cache[key] = load(directory)
    return found
