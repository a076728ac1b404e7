"""traffic: anonymous requests per endpoint, client and minute

Revision ID: 0002_traffic
Revises: 0001
Create Date: 2026-12-03 13:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_traffic'
down_revision = '0001'
branch_labels = ('traffic',)
depends_on = None


def upgrade() -> None:
    op.create_table('anonymous_requests',
    sa.Column('endpoint', sa.String(length=32), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('minute', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('endpoint', 'client', 'minute', 'outcome', name=op.f('pk_anonymous_requests'))
    )
    with op.batch_alter_table('anonymous_requests', schema=None) as batch_op:
        batch_op.create_index('ix_anonymous_requests_minute', ['minute'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('anonymous_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_anonymous_requests_minute')
    op.drop_table('anonymous_requests')
