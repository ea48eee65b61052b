"""HTML routes (filled in by the pages module)."""

from fastapi import APIRouter

router = APIRouter()
