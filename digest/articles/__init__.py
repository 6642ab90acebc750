"""Articles: the article store (upsert, dedupe by guid and canonical URL), JSON import, and
feeds -- the registry, the HTTP download, parsing, sanitizing and the fetch report.

May import: config, store, topics, problems.
"""
