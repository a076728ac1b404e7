"""mail: secure pickup (e-mail recipients of messages, their replies), per-office pickup settings,
users' e-mail notices of new inbox items

Revision ID: 0003_mail_pickup
Revises: 0002_mail_outbox
Create Date: 2026-12-03 17:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_mail_pickup'
down_revision = '0002_mail_outbox'
branch_labels = None
depends_on = '0002_delivery'


def upgrade() -> None:
    op.create_table('pickups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('sender_login', sa.String(length=64), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('mobile', sa.String(length=32), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('downloaded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('replied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('bounced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('bounce_detail', sa.Text(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('code_hash', sa.String(length=64), nullable=True),
    sa.Column('code_enc', sa.LargeBinary(), nullable=True),
    sa.Column('code_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('code_tries', sa.Integer(), nullable=False),
    sa.Column('session_hash', sa.String(length=64), nullable=True),
    sa.Column('session_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_pickups_message_id_messages')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_pickups_office_id_offices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pickups')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_pickups_token_hash'))
    )
    with op.batch_alter_table('pickups', schema=None) as batch_op:
        batch_op.create_index('ix_pickups_message_id', ['message_id'], unique=False)
    op.create_table('pickup_replies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pickup_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('comment_enc', sa.LargeBinary(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['pickup_id'], ['pickups.id'], name=op.f('fk_pickup_replies_pickup_id_pickups')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pickup_replies'))
    )
    with op.batch_alter_table('pickup_replies', schema=None) as batch_op:
        batch_op.create_index('ix_pickup_replies_pickup_id', ['pickup_id'], unique=False)
    op.create_table('pickup_office_settings',
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('expiry_days', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'],
                            name=op.f('fk_pickup_office_settings_office_id_offices')),
    sa.PrimaryKeyConstraint('office_id', name=op.f('pk_pickup_office_settings'))
    )
    op.create_table('user_mail_notices',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_mail_notices_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_mail_notices'))
    )


def downgrade() -> None:
    op.drop_table('user_mail_notices')
    op.drop_table('pickup_office_settings')
    with op.batch_alter_table('pickup_replies', schema=None) as batch_op:
        batch_op.drop_index('ix_pickup_replies_pickup_id')
    op.drop_table('pickup_replies')
    with op.batch_alter_table('pickups', schema=None) as batch_op:
        batch_op.drop_index('ix_pickups_message_id')
    op.drop_table('pickups')
