"""The feedback loop after the 250: bounces, complaints and auto-replies.

Three ways in, one processor. A report -- a mailed DSN (RFC 3464), an ARF complaint (RFC 5965),
a non-standard bounce (``flufl.bounce``), an auto-reply, or a provider's webhook (SES through
SNS, Postmark, Mailgun, SendGrid) -- is parsed by pure code (``report``, ``status``, ``dsn``,
``arf``, ``autoreply``, ``legacy``, ``parse``, ``providers``) into a ``Report``; ``policy`` is
the only module that writes: it finds the delivery (signed VERP return path, our Message-ID, or
the recipient address), records a ``BounceEvent`` with its evidence once per report, and marks
the reader ``bounced`` or ``complained``. ``imap`` polls a bounce mailbox, ``signatures`` and
``sns`` authenticate webhook callers, ``rates`` and ``html_report`` show how an edition fared.

May import: config, store, readers, render.
"""
