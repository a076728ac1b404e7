"""metrics: the weekly aggregates a node sent to each target (scheduled sending, once per target and week)

Revision ID: 0006_metrics_aggregate_sends
Revises: 0005_metrics_procedure_memory
Create Date: 2026-12-04 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0006_metrics_aggregate_sends'
down_revision = '0005_metrics_procedure_memory'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('metrics_aggregate_sends',
    sa.Column('target', sa.String(length=32), nullable=False),
    sa.Column('week', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('sent_digest', sa.String(length=64), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_result', sa.Text(), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'sent', 'failed')", name=op.f('ck_metrics_aggregate_sends_state')),
    sa.PrimaryKeyConstraint('target', 'week', name=op.f('pk_metrics_aggregate_sends'))
    )


def downgrade() -> None:
    op.drop_table('metrics_aggregate_sends')
