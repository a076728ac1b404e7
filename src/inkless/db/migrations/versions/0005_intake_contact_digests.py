"""intake: keyed digests of a submission's phone number and e-mail address, the invitation link it came by
(who still faxes: moved to intake?)

Revision ID: 0005_intake_contact_digests
Revises: 0004_intake_window
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_intake_contact_digests'
down_revision = '0004_intake_window'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('intake_submissions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_digest', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('email_digest', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_intake_submissions_phone_digest', ['phone_digest'], unique=False)
        batch_op.create_index('ix_intake_submissions_email_digest', ['email_digest'], unique=False)
        batch_op.add_column(sa.Column('invitation_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_intake_submissions_invitation_id', ['invitation_id'], unique=False)
    with op.batch_alter_table('fax_invitations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_fax_invitations_code', ['code'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('fax_invitations', schema=None) as batch_op:
        batch_op.drop_index('ix_fax_invitations_code')
        batch_op.drop_column('code')
    with op.batch_alter_table('intake_submissions', schema=None) as batch_op:
        batch_op.drop_index('ix_intake_submissions_invitation_id')
        batch_op.drop_column('invitation_id')
        batch_op.drop_index('ix_intake_submissions_email_digest')
        batch_op.drop_index('ix_intake_submissions_phone_digest')
        batch_op.drop_column('email_digest')
        batch_op.drop_column('phone_digest')
