"""blobs: documents, envelopes, fax images and receipts kept in the database, in sealed chunks

Revision ID: 0008_blobs
Revises: 0007_merge_heads
Create Date: 2026-12-04 21:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0008_blobs'
down_revision = '0007_merge_heads'
branch_labels = ('blobs',)
depends_on = None


def upgrade() -> None:
    op.create_table('blobs',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.LargeBinary(length=16), nullable=True),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_blobs'))
    )
    op.create_index('ix_blobs_stored_at', 'blobs', ['stored_at'], unique=False)
    op.create_table('blob_chunks',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('digest', 'seq', name=op.f('pk_blob_chunks'))
    )


def downgrade() -> None:
    op.drop_table('blob_chunks')
    op.drop_index('ix_blobs_stored_at', table_name='blobs')
    op.drop_table('blobs')
