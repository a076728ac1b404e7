"""drafts: files uploaded with a form that was refused, kept for a short while under a token

Revision ID: 0004_lang_form_drafts
Revises: 0001
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_lang_form_drafts'
down_revision = '0001'
branch_labels = ('drafts',)
depends_on = None


def upgrade() -> None:
    op.create_table(
        'form_drafts',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_form_drafts_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_form_drafts')),
    )
    op.create_index('ix_form_drafts_expires_at', 'form_drafts', ['expires_at'])
    op.create_table(
        'form_draft_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('draft_id', sa.String(length=64), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('blob', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['draft_id'], ['form_drafts.id'],
                                name=op.f('fk_form_draft_files_draft_id_form_drafts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_form_draft_files')),
    )
    op.create_index('ix_form_draft_files_draft_id', 'form_draft_files', ['draft_id'])


def downgrade() -> None:
    op.drop_index('ix_form_draft_files_draft_id', table_name='form_draft_files')
    op.drop_table('form_draft_files')
    op.drop_index('ix_form_drafts_expires_at', table_name='form_drafts')
    op.drop_table('form_drafts')
