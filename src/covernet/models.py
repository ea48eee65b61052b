"""Import every domain's tables so metadata (and Alembic) sees the whole schema."""

from covernet.audit import models as audit_models
from covernet.catalog import models as catalog_models
from covernet.claims import models as claims_models
from covernet.compliance import models as compliance_models
from covernet.consult import appointment_models, assistant_models, wechat_models
from covernet.consult import models as consult_models
from covernet.core import idempotency as idempotency_models
from covernet.core.db import Base
from covernet.crm import consent_models as crm_consent_models
from covernet.crm import models as crm_models
from covernet.identity import models as identity_models
from covernet.integration import models as integration_models
from covernet.notify import models as notify_models
from covernet.partners import models as partners_models
from covernet.payments import models as payments_models
from covernet.payments import payout_models
from covernet.payments.providers import sandbox_models as sandbox_payment_models
from covernet.payments.providers import sandbox_payout_models
from covernet.policies import models as policies_models
from covernet.social import link_models as social_link_models
from covernet.social import models as social_models
from covernet.social import offer_models as social_offer_models

__all__ = [
    "Base",
    "appointment_models",
    "assistant_models",
    "audit_models",
    "catalog_models",
    "claims_models",
    "compliance_models",
    "consult_models",
    "crm_consent_models",
    "crm_models",
    "idempotency_models",
    "identity_models",
    "integration_models",
    "notify_models",
    "partners_models",
    "payments_models",
    "payout_models",
    "policies_models",
    "sandbox_payment_models",
    "sandbox_payout_models",
    "social_link_models",
    "social_models",
    "social_offer_models",
    "wechat_models",
]
