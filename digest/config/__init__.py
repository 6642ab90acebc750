"""Configuration and errors: ``Settings`` (the only reader of the environment and of
``.env``) and ``DigestError``, whose hint and exit code the CLI shows.

May import: nothing else of digest.
"""
