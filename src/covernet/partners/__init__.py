"""Partners' signed events (``POST /api/v1/partner/events``) and their handlers' registry."""
