"""fax: SIP line facts on the call log (media, Call-ID, gateway) and the softmodem memory per number

Revision ID: 0003_fax_sip
Revises: 0002_fax
Create Date: 2026-12-03 13:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_fax_sip'
down_revision = '0002_fax'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('fax_calls', sa.Column('media', sa.String(length=8), nullable=True))
    op.add_column('fax_calls', sa.Column('call_id', sa.String(length=128), nullable=True))
    op.add_column('fax_calls', sa.Column('gateway', sa.String(length=128), nullable=True))
    op.create_table('fax_sip_softmodem',
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('learned_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('number', name=op.f('pk_fax_sip_softmodem'))
    )


def downgrade() -> None:
    op.drop_table('fax_sip_softmodem')
    with op.batch_alter_table('fax_calls') as batch:
        batch.drop_column('gateway')
        batch.drop_column('call_id')
        batch.drop_column('media')
