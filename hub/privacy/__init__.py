"""GDPR: what the hub holds about a customer, and forgetting it.

    subject      who a request is about: the customer, the records merged into
                 it, and the values that name the person (full names,
                 addresses, numbers, chat ids)
    export       access (Art. 15): everything held, as one JSON document
    erasure      erasure (Art. 17): personal data out of every table, figures kept
    sweep        the person's values blanked in tables erasure does not know
    suppression  erased addresses as keyed hashes, so marketing never finds them again
    reimport     what a CSV import does with a suppressed address
    retention    history older than OMNIHUB_RETENTION_DAYS purged

This package imports nothing on import: `hub.gate` uses `suppression`, and the
other modules build on the hub's context, which imports the gate.
"""
