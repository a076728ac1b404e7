"""witness: tree heads this node cosigned for peers, refusals, and cosignatures peers gave it

Revision ID: 0003_witness
Revises: 0001
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_witness'
down_revision = '0001'
branch_labels = ('witness',)
depends_on = None


def upgrade() -> None:
    op.create_table('witnessed_heads',
    sa.Column('peer_node_id', sa.String(length=64), nullable=False),
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('head_timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('head_signature', sa.LargeBinary(), nullable=False),
    sa.Column('head_certificate', sa.LargeBinary(), nullable=False),
    sa.Column('cosigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cosignature', sa.LargeBinary(), nullable=False),
    sa.Column('cosignature_certificate', sa.LargeBinary(), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('peer_node_id', 'tree_size', name=op.f('pk_witnessed_heads'))
    )
    op.create_table('witness_refusals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('peer_node_id', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('held_size', sa.BigInteger(), nullable=True),
    sa.Column('held_root', sa.LargeBinary(length=32), nullable=True),
    sa.Column('offered_size', sa.BigInteger(), nullable=True),
    sa.Column('offered_root', sa.LargeBinary(length=32), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_witness_refusals'))
    )
    with op.batch_alter_table('witness_refusals', schema=None) as batch_op:
        batch_op.create_index('ix_witness_refusals_peer', ['peer_node_id', 'last_seen_at'], unique=False)
    op.create_table('audit_cosignatures',
    sa.Column('witness_node_id', sa.String(length=64), nullable=False),
    sa.Column('tree_size', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('root_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('head_timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cosigned_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('certificate', sa.LargeBinary(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('witness_node_id', 'tree_size', name=op.f('pk_audit_cosignatures'))
    )


def downgrade() -> None:
    op.drop_table('audit_cosignatures')
    with op.batch_alter_table('witness_refusals', schema=None) as batch_op:
        batch_op.drop_index('ix_witness_refusals_peer')
    op.drop_table('witness_refusals')
    op.drop_table('witnessed_heads')
