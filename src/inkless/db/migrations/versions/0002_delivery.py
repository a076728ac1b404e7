"""delivery: messages, outbox, inbox, distribution lists

Revision ID: 0002_delivery
Revises: 0001
Create Date: 2026-11-30 16:28:03.862289
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_delivery'
down_revision = '0001'
branch_labels = ('delivery',)
depends_on = None


def upgrade() -> None:
    op.create_table('distribution_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_distribution_lists')),
    sa.UniqueConstraint('name', name=op.f('uq_distribution_lists_name'))
    )
    op.create_table('distribution_list_members',
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['distribution_lists.id'], name=op.f('fk_distribution_list_members_list_id_distribution_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('list_id', 'address', name=op.f('pk_distribution_list_members'))
    )
    op.create_table('inbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('sender', sa.String(length=200), nullable=False),
    sa.Column('classification', sa.Integer(), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('subject_enc', sa.LargeBinary(), nullable=False),
    sa.Column('envelope_sha256', sa.String(length=64), nullable=False),
    sa.Column('envelope_size', sa.Integer(), nullable=False),
    sa.Column('document_count', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('authenticated', sa.Boolean(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('receipt', sa.LargeBinary(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("source IN ('inkless', 'fax')", name=op.f('ck_inbox_source')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_inbox_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox')),
    sa.UniqueConstraint('message_id', 'office_id', name='uq_inbox_message_office')
    )
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_office_id_received_at', ['office_id', 'received_at'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('sender_login', sa.String(length=64), nullable=False),
    sa.Column('classification', sa.Integer(), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=True),
    sa.Column('reply_to', sa.String(length=36), nullable=True),
    sa.Column('subject_enc', sa.LargeBinary(), nullable=False),
    sa.Column('envelope_sha256', sa.String(length=64), nullable=False),
    sa.Column('envelope_size', sa.Integer(), nullable=False),
    sa.Column('document_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("priority IN ('normal', 'urgent')", name=op.f('ck_messages_priority')),
    sa.CheckConstraint('classification BETWEEN 0 AND 3', name=op.f('ck_messages_classification')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_messages_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_office_id_created_at', ['office_id', 'created_at'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('recipient', sa.String(length=200), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('receipt', sa.LargeBinary(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('queued', 'retrying', 'delivered', 'expired', 'rejected', 'fax')", name=op.f('ck_outbox_state')),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_outbox_message_id_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('message_id', 'recipient', name='uq_outbox_message_recipient')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_state_next_attempt_at', ['state', 'priority', 'next_attempt_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_state_next_attempt_at')

    op.drop_table('outbox')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_office_id_created_at')

    op.drop_table('messages')
    with op.batch_alter_table('inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_office_id_received_at')

    op.drop_table('inbox')
    op.drop_table('distribution_list_members')
    op.drop_table('distribution_lists')
