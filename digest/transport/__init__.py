"""SMTP transport: one connection (TLS and AUTH rules, aiosmtplib), the pipelined data path
on it (``pipeline``: RFC 2920 when offered, lock-step otherwise; ``reply_reader`` parses the
replies), a pool of reused connections with a rate limit, what each reply means
(``replies``), and a local sink for trying things out.
Knows nothing of the database.

May import: config.
"""
