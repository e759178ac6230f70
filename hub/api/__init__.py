"""The hub's JSON API, one router per resource."""

from hub.api import (
    agents,
    blocks,
    campaigns,
    complaints,
    consents,
    conversations,
    customers,
    dead_letters,
    interactions,
    kpis,
    ops,
    privacy,
    unsubscribe,
)

ROUTERS = (
    ops.router,
    customers.router,
    interactions.router,
    complaints.router,
    conversations.router,
    agents.router,
    blocks.router,
    consents.router,
    consents.public,
    dead_letters.router,
    privacy.router,
    privacy.suppressions,
    campaigns.router,
    unsubscribe.router,
    kpis.router,
)
