"""deliveries (PostgreSQL): a partial index of the pending rows by id, the queue the claims
read in order from their cursor on (SQLite's (state, next_attempt_at) index gives that order
already: its entries end with the rowid)

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


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_deliveries_pending", table_name="deliveries")
