"""seals: approval routes, their steps and approvers, document revisions, route events

Revision ID: 0002_seals
Revises: 0001
Create Date: 2026-11-30 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_seals'
down_revision = '0001'
branch_labels = ('seals',)
depends_on = None


def upgrade() -> None:
    op.create_table('routes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('starter_id', sa.Integer(), nullable=False),
    sa.Column('document_name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('current_step', sa.Integer(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('original_digest', sa.String(length=64), nullable=False),
    sa.Column('strip_page', sa.Integer(), nullable=False),
    sa.Column('deliver_to', sa.String(length=200), nullable=True),
    sa.Column('delivered_message_id', sa.String(length=64), nullable=True),
    sa.Column('office_sealed_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('in_progress', 'awaiting_office_seal', 'completed', 'rejected')",
                       name=op.f('ck_routes_state')),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_routes_office_id_offices')),
    sa.ForeignKeyConstraint(['office_sealed_by'], ['users.id'], name=op.f('fk_routes_office_sealed_by_users')),
    sa.ForeignKeyConstraint(['starter_id'], ['users.id'], name=op.f('fk_routes_starter_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routes'))
    )
    with op.batch_alter_table('routes', schema=None) as batch_op:
        batch_op.create_index('ix_routes_office_id_state', ['office_id', 'state'], unique=False)

    op.create_table('route_steps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=32), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('base_revision', sa.Integer(), nullable=True),
    sa.CheckConstraint("state IN ('waiting', 'active', 'done')", name=op.f('ck_route_steps_state')),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_route_steps_route_id_routes'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_steps')),
    sa.UniqueConstraint('route_id', 'idx', name='uq_route_steps_route_idx')
    )
    op.create_table('step_approvers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('field_name', sa.String(length=64), nullable=False),
    sa.Column('stamped_revision', sa.Integer(), nullable=True),
    sa.Column('stamped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('seal_kind', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['step_id'], ['route_steps.id'], name=op.f('fk_step_approvers_step_id_route_steps'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_step_approvers_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_approvers')),
    sa.UniqueConstraint('step_id', 'user_id', name='uq_step_approvers_step_user')
    )
    with op.batch_alter_table('step_approvers', schema=None) as batch_op:
        batch_op.create_index('ix_step_approvers_user_id', ['user_id'], unique=False)

    op.create_table('route_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('blob_digest', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('strip', 'stamp', 'restart', 'office_seal', 'lta')",
                       name=op.f('ck_route_documents_kind')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_route_documents_actor_id_users')),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_route_documents_route_id_routes'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_documents')),
    sa.UniqueConstraint('route_id', 'revision', name='uq_route_documents_route_revision')
    )
    op.create_table('route_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('step_idx', sa.Integer(), nullable=True),
    sa.Column('to_step', sa.Integer(), nullable=True),
    sa.Column('revision', sa.Integer(), nullable=True),
    sa.Column('seal_kind', sa.String(length=16), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.CheckConstraint("action IN ('started', 'stamped', 'returned', 'rejected', 'office_sealed')",
                       name=op.f('ck_route_events_action')),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_route_events_actor_id_users')),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_route_events_route_id_routes'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_route_events'))
    )
    with op.batch_alter_table('route_events', schema=None) as batch_op:
        batch_op.create_index('ix_route_events_route_id', ['route_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('route_events', schema=None) as batch_op:
        batch_op.drop_index('ix_route_events_route_id')
    op.drop_table('route_events')
    op.drop_table('route_documents')
    with op.batch_alter_table('step_approvers', schema=None) as batch_op:
        batch_op.drop_index('ix_step_approvers_user_id')
    op.drop_table('step_approvers')
    op.drop_table('route_steps')
    with op.batch_alter_table('routes', schema=None) as batch_op:
        batch_op.drop_index('ix_routes_office_id_state')
    op.drop_table('routes')
