"""The delivery ledger: the schedule (who is due when: frequency, send hour, timezone), plan
the due deliveries, claim them in batches, record each result, and the guards around a run --
the run lock and sender presence. Also the snapshots: plain views of rows that compose and
render take.

May import: config, store, compose, readers.
"""
