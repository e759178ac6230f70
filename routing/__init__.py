"""Who takes a conversation: tiers, rules, presence and capacity, queues, SLA timers.

    rules       the rules file (YAML): read, validated with file and line, `Rules`
    decision    the decision as a pure function of a `Situation`, with its explanation
    capacity    agents as routing sees them: presence, load per channel, capacity
    queues      the waiting conversations per team, and the routing lock
    router      decisions against the database: push on arrival, pull when free
    presence    `set_presence`: stamp, tell the console, move the waiting work
    manual      assignment and transfer by hand: checks (409), record, what it frees
    sla         timers from the database: SLA breaches, widening steps, filling free agents
    tiers       ABC analysis of revenue (`omnihub tiers recompute`)
    engine      the `hub.assignment.Router` the app wires in

`routing` uses `hub`; `hub` reaches it only through `hub.app`, which installs
the router and its timer job, and the CLI's `tiers recompute`.
"""
