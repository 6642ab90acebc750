"""SMTP transport: one connection (TLS and AUTH rules), a pool of reused connections with a
rate limit, what each reply means (``replies``), and a local sink for trying things out.
Knows nothing of the database.

May import: config.
"""
