"""The reader-facing web app served by ``digest serve``: sign-up with double opt-in, the links
in every email (confirm, unsubscribe, preferences), the privacy notice and the archive.

``create_app(settings)`` builds it; see ``digest.web.app`` for the paths and proxy setup.

Provider webhooks (``/webhooks/ses``, ``/postmark``, ``/mailgun``, ``/sendgrid``) feed bounces
and complaints to ``digest.feedback``.

May import: config, store, topics, readers, render, transport, feedback.
"""

from digest.web.app import create_app

__all__ = ["create_app"]
