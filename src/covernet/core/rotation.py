"""Re-encrypt stored personal data with the active field key, so old keys can retire."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from covernet.core.crypto import get_cipher

BATCH = 500


def rotate_column(
    db: Session,
    primary_key: InstrumentedAttribute[Any],
    column: InstrumentedAttribute[Any],
    *,
    context: str,
) -> int:
    """Re-encrypt every value of ``column`` not under the active key; return how many.

    Walks the table in primary-key order in batches, so it works on large tables.
    """
    cipher = get_cipher()
    table = column.class_
    rotated = 0
    last: Any = None
    while True:
        stmt = select(primary_key, column).where(column.is_not(None)).order_by(primary_key)
        if last is not None:
            stmt = stmt.where(primary_key > last)
        rows = db.execute(stmt.limit(BATCH)).all()
        if not rows:
            return rotated
        for key, token in rows:
            if cipher.needs_rotation(token):
                # Only if the value is still the one read: a concurrent change (a purge
                # scrubbing it, say) must not be overwritten with the old value.
                changed = db.execute(
                    update(table)
                    .where(primary_key == key, column == token)
                    .values({column.key: cipher.rotate(token, context=context)})
                    .execution_options(synchronize_session=False)
                )
                rotated += int(getattr(changed, "rowcount", 0) or 0)
        last = rows[-1][0]
