"""The gift activation form, one for every page that activates gifted cover: the red
envelope page (``/e/{id}``) and the scenario offer page (``/o/{token}``).

The form (template ``_gift_activation.html``) asks for the recipient's name and ID number
and shows each document in full with its hash; a document counts as confirmed only when
its box was ticked (R13).  Nothing here decides anything: the parsed
:class:`covernet.social.service.ActivateIn` goes to the same activation service as the
JSON route.
"""

from __future__ import annotations

from starlette.datastructures import FormData

from covernet.catalog.documents import SaleDocument
from covernet.policies import applications
from covernet.social.service import ActivateIn
from covernet.web.pages import field

MAX_SHOWN = 50


def posted(form: FormData) -> dict[str, str]:
    """The values typed, to keep in the form when it is shown again with an error."""
    return {"name": field(form, "name"), "id_number": field(form, "id_number")}


def activation_input(form: FormData) -> ActivateIn:
    """The activation form as the service's input; raises ``ValueError`` (pydantic's) for
    a name or number the model refuses.  An empty field becomes a placeholder the service
    refuses with its own, named error (``invalid_id_number``, …)."""
    values = posted(form)
    return ActivateIn(
        name=values["name"] or "-",
        id_number=values["id_number"] or "0" * 18,
        acknowledgements={
            key.removeprefix("doc_hash."): str(value)
            for key, value in form.multi_items()
            if key.startswith("doc_hash.") and form.get("confirm." + key[9:]) == "yes"
        },
        shown=[
            applications.ShownIn(document=key.removeprefix("shown."), shown_at=str(value))
            for key, value in form.multi_items()
            if key.startswith("shown.") and value
        ][:MAX_SHOWN],
    )


def documents(docs: list[SaleDocument]) -> list[dict[str, object]]:
    """The documents as the partial shows them (each with the hash of its text)."""
    return [
        {"code": d.code, "title": d.title, "paragraphs": d.paragraphs, "hash": d.content_hash}
        for d in docs
    ]
