"""intake: the public intake window (windows, e-mail codes, submissions), fax invitations; inbox source 'intake'

Revision ID: 0004_intake_window
Revises: 0003_delivery_fax_state
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_intake_window'
down_revision = '0003_delivery_fax_state'
branch_labels = ('intake',)
# After the delivery branch: the inbox table and its source check belong to it.
depends_on = None


def upgrade() -> None:
    op.create_table('intake_windows',
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('max_files', sa.Integer(), nullable=False),
    sa.Column('max_file_bytes', sa.Integer(), nullable=False),
    sa.Column('max_pages', sa.Integer(), nullable=False),
    sa.Column('max_pixels', sa.Integer(), nullable=False),
    sa.Column('procedures', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_intake_windows_office_id_offices')),
    sa.PrimaryKeyConstraint('office_id', name=op.f('pk_intake_windows'))
    )
    op.create_table('intake_codes',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=8), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('email_enc', sa.LargeBinary(), nullable=True),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('payload_blob', sa.String(length=64), nullable=True),
    sa.Column('receipt_number', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("purpose IN ('submit', 'status')", name=op.f('ck_intake_codes_purpose')),
    sa.CheckConstraint("state IN ('pending', 'accepted', 'locked', 'void')", name=op.f('ck_intake_codes_state')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_intake_codes_office_id_offices')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_intake_codes'))
    )
    with op.batch_alter_table('intake_codes', schema=None) as batch_op:
        batch_op.create_index('ix_intake_codes_expires_at', ['expires_at'], unique=False)
    op.create_table('intake_submissions',
    sa.Column('receipt_number', sa.String(length=32), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('email_enc', sa.LargeBinary(), nullable=False),
    sa.Column('certificate_blob', sa.String(length=64), nullable=False),
    sa.Column('file_count', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_intake_submissions_office_id_offices')),
    sa.PrimaryKeyConstraint('receipt_number', name=op.f('pk_intake_submissions'))
    )
    with op.batch_alter_table('intake_submissions', schema=None) as batch_op:
        batch_op.create_index('ix_intake_submissions_office_id_received_at', ['office_id', 'received_at'],
                              unique=False)
    op.create_table('fax_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('invited_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('invited_by', sa.String(length=64), nullable=False),
    sa.Column('fax_job_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=64), nullable=True),
    sa.CheckConstraint("source IN ('fax_call', 'message', 'cli')", name=op.f('ck_fax_invitations_source')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_fax_invitations_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fax_invitations'))
    )
    with op.batch_alter_table('fax_invitations', schema=None) as batch_op:
        batch_op.create_index('ix_fax_invitations_number', ['number'], unique=False)
        batch_op.create_index('ix_fax_invitations_office_id_invited_at', ['office_id', 'invited_at'], unique=False)
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_inbox_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_inbox_source'), "source IN ('inkless', 'fax', 'intake')")


def downgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_inbox_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_inbox_source'), "source IN ('inkless', 'fax')")
    with op.batch_alter_table('fax_invitations', schema=None) as batch_op:
        batch_op.drop_index('ix_fax_invitations_office_id_invited_at')
        batch_op.drop_index('ix_fax_invitations_number')
    op.drop_table('fax_invitations')
    with op.batch_alter_table('intake_submissions', schema=None) as batch_op:
        batch_op.drop_index('ix_intake_submissions_office_id_received_at')
    op.drop_table('intake_submissions')
    with op.batch_alter_table('intake_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_intake_codes_expires_at')
    op.drop_table('intake_codes')
    op.drop_table('intake_windows')
