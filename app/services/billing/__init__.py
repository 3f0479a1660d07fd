"""Subscriptions as the terms describe them: a free plan, paid plans ordered for 12 months or
for 24 months with a recurring card payment, proforma invoices through the sales department,
invoices at every payment. No refund: stopping or cancelling keeps the plan to the end of the
paid period.

A plan's limits never block receiving a report or meeting a deadline: they bound the team and
the websites that embed the form, nothing the Act requires.
"""

from app.services.billing.invoices import issue_proforma
from app.services.billing.orders import check_returning_order, organisation_invoice, place_order
from app.services.billing.payments import payment_notice, record_payment
from app.services.billing.plans import (
    RECURRING_MONTHS,
    add_months,
    card_payments,
    check_designated_persons,
    check_embed_origins,
    gateway,
    overview,
    price_list,
    supplier_configured,
    today,
)
from app.services.billing.renewals import (
    end_recurrences,
    ending_notices,
    renew_due,
    stop_recurrence,
)

__all__ = [
    "RECURRING_MONTHS",
    "add_months",
    "card_payments",
    "check_designated_persons",
    "check_embed_origins",
    "check_returning_order",
    "end_recurrences",
    "ending_notices",
    "gateway",
    "issue_proforma",
    "organisation_invoice",
    "overview",
    "payment_notice",
    "place_order",
    "price_list",
    "record_payment",
    "renew_due",
    "stop_recurrence",
    "supplier_configured",
    "today",
]
