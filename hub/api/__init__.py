"""The hub's JSON API, one router per resource."""

from hub.api import agents, complaints, conversations, customers, interactions, ops

ROUTERS = (
    ops.router,
    customers.router,
    interactions.router,
    complaints.router,
    conversations.router,
    agents.router,
)
