"""JSON request bodies parsed straight from bytes (for hot routes).

FastAPI's own body handling decodes JSON into Python objects and then validates them;
pydantic can validate the raw bytes in one pass.  Malformed bodies raise the same
``RequestValidationError`` FastAPI would, so clients see the usual ``malformed_request``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# Models documented this way, for the app's OpenAPI document to include.
DOCUMENTED: dict[str, type[BaseModel]] = {}


def parse_json_body(model: type[M], raw: bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def json_body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the route's required JSON body."""
    DOCUMENTED[model.__name__] = model
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def component_schemas() -> dict[str, Any]:
    """JSON schemas of the documented bodies, their nested models hoisted alongside."""
    out: dict[str, Any] = {}
    for name, model in DOCUMENTED.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    return out
