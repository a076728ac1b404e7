"""fax: call log, outbound jobs, routing rules, block list, per-office fax settings

Revision ID: 0002_fax
Revises: 0001
Create Date: 2026-11-30 16:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_fax'
down_revision = '0001'
branch_labels = ('fax',)
depends_on = None


def upgrade() -> None:
    op.create_table('fax_block_list',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('pattern', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('cid', 'tsi')", name=op.f('ck_fax_block_list_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fax_block_list')),
    sa.UniqueConstraint('kind', 'pattern', name='uq_fax_block_list_kind_pattern')
    )
    op.create_table('fax_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('document_blob', sa.String(length=64), nullable=False),
    sa.Column('tiff_blob', sa.String(length=64), nullable=False),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('cover_page', sa.Boolean(), nullable=False),
    sa.Column('classification', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('max_tries', sa.Integer(), nullable=False),
    sa.Column('interval_s', sa.Integer(), nullable=False),
    sa.Column('kill_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_code', sa.Integer(), nullable=True),
    sa.Column('last_text', sa.Text(), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('outbox_ref', sa.String(length=128), nullable=True),
    sa.Column('report_blob', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("origin IN ('clerk', 'fallback')", name=op.f('ck_fax_jobs_origin')),
    sa.CheckConstraint("state IN ('queued', 'sending', 'retrying', 'done', 'failed')", name=op.f('ck_fax_jobs_state')),
    sa.CheckConstraint('classification BETWEEN 0 AND 1', name=op.f('ck_fax_jobs_classification')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_fax_jobs_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fax_jobs'))
    )
    op.create_index('ix_fax_jobs_outbox_ref', 'fax_jobs', ['outbox_ref'], unique=False)
    op.create_index('ix_fax_jobs_state_next', 'fax_jobs', ['state', 'next_attempt_at'], unique=False)
    op.create_table('fax_routing_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('pattern', sa.String(length=128), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('did', 'subaddress', 'tsi', 'cid')", name=op.f('ck_fax_routing_rules_kind')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_fax_routing_rules_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fax_routing_rules')),
    sa.UniqueConstraint('kind', 'pattern', name='uq_fax_routing_rules_kind_pattern')
    )
    op.create_table('fax_settings',
    sa.Column('office_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('fallback_enabled', sa.Boolean(), nullable=False),
    sa.Column('cover_page_default', sa.Boolean(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_fax_settings_office_id_offices')),
    sa.PrimaryKeyConstraint('office_id', name=op.f('pk_fax_settings'))
    )
    op.create_table('fax_calls',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=4), nullable=False),
    sa.Column('line', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('remote_number', sa.String(length=64), nullable=True),
    sa.Column('called_number', sa.String(length=64), nullable=True),
    sa.Column('sub_address', sa.String(length=64), nullable=True),
    sa.Column('remote_ident', sa.String(length=64), nullable=True),
    sa.Column('local_ident', sa.String(length=64), nullable=True),
    sa.Column('pages', sa.Integer(), nullable=False),
    sa.Column('pages_expected', sa.Integer(), nullable=True),
    sa.Column('bit_rate', sa.Integer(), nullable=False),
    sa.Column('ecm', sa.Boolean(), nullable=False),
    sa.Column('compression', sa.String(length=16), nullable=False),
    sa.Column('bad_rows', sa.Integer(), nullable=False),
    sa.Column('t30_code', sa.Integer(), nullable=False),
    sa.Column('t30_text', sa.Text(), nullable=False),
    sa.Column('success', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=True),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.Column('tiff_blob', sa.String(length=64), nullable=True),
    sa.Column('pdf_blob', sa.String(length=64), nullable=True),
    sa.Column('report_blob', sa.String(length=64), nullable=True),
    sa.Column('routed_by', sa.String(length=80), nullable=True),
    sa.Column('message_id', sa.String(length=128), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("direction IN ('SEND', 'RECV')", name=op.f('ck_fax_calls_direction')),
    sa.ForeignKeyConstraint(['job_id'], ['fax_jobs.id'], name=op.f('fk_fax_calls_job_id_fax_jobs')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_fax_calls_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fax_calls'))
    )
    op.create_index('ix_fax_calls_job_id', 'fax_calls', ['job_id'], unique=False)
    op.create_index('ix_fax_calls_started_at', 'fax_calls', ['started_at'], unique=False)
    op.create_index('ix_fax_calls_status', 'fax_calls', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_fax_calls_status', table_name='fax_calls')
    op.drop_index('ix_fax_calls_started_at', table_name='fax_calls')
    op.drop_index('ix_fax_calls_job_id', table_name='fax_calls')
    op.drop_table('fax_calls')
    op.drop_table('fax_settings')
    op.drop_table('fax_routing_rules')
    op.drop_index('ix_fax_jobs_state_next', table_name='fax_jobs')
    op.drop_index('ix_fax_jobs_outbox_ref', table_name='fax_jobs')
    op.drop_table('fax_jobs')
    op.drop_table('fax_block_list')
