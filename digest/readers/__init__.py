"""Readers: the subscriber lifecycle with its consent events (add, confirm, unsubscribe,
bounce, erase), the one address rule for every way in, and CSV import/export.

May import: config, store, topics, problems.
"""
