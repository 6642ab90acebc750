"""Render (pure): a composed ``Digest`` becomes message bytes -- Jinja templates, the values
they show, MIME with pre-encoded quoted-printable parts, DKIM, and the signed link tokens.
No database, no network.

May import: config, store, compose, readers.
"""
