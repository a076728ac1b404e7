"""federation: pinned peers and seen request nonces

Revision ID: 0002_federation
Revises: 0001
Create Date: 2026-11-30 16:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_federation'
down_revision = '0001'
branch_labels = ('federation',)
depends_on = None


def upgrade() -> None:
    op.create_table('federation_peers',
    sa.Column('node_id', sa.String(length=32), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('ca_der', sa.LargeBinary(), nullable=False),
    sa.Column('fingerprint', sa.String(length=80), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('unreachable_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('directory_jws', sa.Text(), nullable=True),
    sa.Column('directory_fetched_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('node_id', name=op.f('pk_federation_peers'))
    )
    op.create_table('federation_nonces',
    sa.Column('node_id', sa.String(length=32), nullable=False),
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('node_id', 'nonce', name=op.f('pk_federation_nonces'))
    )
    with op.batch_alter_table('federation_nonces', schema=None) as batch_op:
        batch_op.create_index('ix_federation_nonces_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('federation_nonces', schema=None) as batch_op:
        batch_op.drop_index('ix_federation_nonces_expires_at')

    op.drop_table('federation_nonces')
    op.drop_table('federation_peers')
