"""indexes for the send: the pending queue (PostgreSQL), one redundant index less

- deliveries (PostgreSQL): a partial index of the pending rows by id, the queue the claims
  read in order from their cursor on (SQLite's (state, next_attempt_at) index gives that
  order already: its entries end with the rowid);
- subscribers: ``ix_subscribers_status`` goes, ``ix_subscribers_status_frequency`` starts with
  the same column; on PostgreSQL every reader's ``last_digest_at`` update wrote an entry in it.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_PENDING = sa.text("state = 'pending' AND next_attempt_at IS NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_deliveries_pending", "deliveries", ["id"], unique=False,
                        postgresql_where=_PENDING)
    op.drop_index("ix_subscribers_status", table_name="subscribers")


def downgrade() -> None:
    op.create_index("ix_subscribers_status", "subscribers", ["status"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_deliveries_pending", table_name="deliveries")
