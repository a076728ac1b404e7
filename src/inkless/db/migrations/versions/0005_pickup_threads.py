"""pickup: replies through a pickup link thread into the sender office's inbox (inbox source 'pickup',
inbox.reply_to, pickup_replies.inbox_message_id); the conversation of a message is found by reply_to

Revision ID: 0005_pickup_threads
Revises: 0004_intake_window, 0003_mail_pickup, 0004_search_index
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_pickup_threads'
# Joins three branches: the inbox source check was last changed by intake, the pickup tables come from
# the mail branch, the inbox's search rows from the search branch.
down_revision = ('0004_intake_window', '0003_mail_pickup', '0004_search_index')
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply_to', sa.String(length=36), nullable=True))
        batch_op.drop_constraint(op.f('ck_inbox_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_inbox_source'), "source IN ('inkless', 'fax', 'intake', 'pickup')")
        batch_op.create_index('ix_inbox_reply_to', ['reply_to'], unique=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_reply_to', ['reply_to'], unique=False)
    with op.batch_alter_table('pickup_replies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inbox_message_id', sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pickup_replies', schema=None) as batch_op:
        batch_op.drop_column('inbox_message_id')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_reply_to')
    op.execute("DELETE FROM search_index WHERE inbox_id IN (SELECT id FROM inbox WHERE source = 'pickup')")
    op.execute("DELETE FROM inbox WHERE source = 'pickup'")
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_reply_to')
        batch_op.drop_constraint(op.f('ck_inbox_source'), type_='check')
        batch_op.create_check_constraint(op.f('ck_inbox_source'), "source IN ('inkless', 'fax', 'intake')")
        batch_op.drop_column('reply_to')
