"""pageview: page images of documents, rendered once and cached as blobs

Revision ID: 0004_docview_page_images
Revises: 0001
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_docview_page_images'
down_revision = '0001'
branch_labels = ('pageview',)
depends_on = None


def upgrade() -> None:
    op.create_table(
        'page_images',
        sa.Column('source_sha256', sa.String(length=64), nullable=False),
        sa.Column('page', sa.Integer(), nullable=False),
        sa.Column('dpi', sa.Integer(), nullable=False),
        sa.Column('png_digest', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('source_sha256', 'page', 'dpi', name=op.f('pk_page_images')),
    )


def downgrade() -> None:
    op.drop_table('page_images')
