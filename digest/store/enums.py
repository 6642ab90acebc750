"""The states and kinds the store records, as enums (stored by value, so renaming a member is a
migration, adding one is not).
"""

from __future__ import annotations

import enum

__all__ = ["BounceKind", "ConsentKind", "DeliveryState", "Frequency", "SubscriberStatus"]


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class Frequency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"


class ConsentKind(enum.StrEnum):
    SUBSCRIBE = "subscribe"
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    IMPORT = "import"
    ERASE = "erase"
    PREFERENCES = "preferences"
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    RESUBSCRIBE = "resubscribe"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SKIPPED = "skipped"


class BounceKind(enum.StrEnum):
    """What a report after the 250 said about a recipient (policy: ``digest.feedback``)."""

    HARD, SOFT, COMPLAINT = "hard", "soft", "complaint"
    POLICY = "policy"  # 5.7.x blocks: our reputation or content, not the address
