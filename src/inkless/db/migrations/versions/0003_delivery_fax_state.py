"""delivery: the fax fallback's decision and outcome on outbox rows; "received by fax first" on inbox rows

Revision ID: 0003_delivery_fax_state
Revises: 0002_delivery
Create Date: 2026-12-03 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_delivery_fax_state'
down_revision = '0002_delivery'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fax_decision', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('fax_decision_params', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('fax_outcome', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('fax_outcome_params', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('fax_updated_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fax_first', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('fax_copy_message_id', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_column('fax_copy_message_id')
        batch_op.drop_column('fax_first')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('fax_updated_at')
        batch_op.drop_column('fax_outcome')
        batch_op.drop_column('fax_outcome_params')
        batch_op.drop_column('fax_decision_params')
        batch_op.drop_column('fax_decision')
