"""seals: 差し戻し to the starter and corrected versions of a route's document (v1, v2 …)

Revision ID: 0004_docview_route_versions
Revises: 0002_seals
Create Date: 2026-12-03 17:10:00

``routes`` only gets new columns (added in place): recreating it on SQLite would cascade-delete
its steps and events. The two tables whose check constraints grow have no dependents.
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_docview_route_versions'
down_revision = '0002_seals'
branch_labels = None
depends_on = None

OLD_KINDS = "kind IN ('strip', 'stamp', 'restart', 'office_seal', 'lta')"
NEW_KINDS = "kind IN ('strip', 'stamp', 'restart', 'version', 'office_seal', 'lta')"
OLD_ACTIONS = "action IN ('started', 'stamped', 'returned', 'rejected', 'office_sealed')"
NEW_ACTIONS = "action IN ('started', 'stamped', 'returned', 'resubmitted', 'rejected', 'office_sealed')"


def _checks(kinds: str, actions: str) -> None:
    with op.batch_alter_table('route_documents', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_route_documents_kind'), type_='check')
        batch_op.create_check_constraint('kind', kinds)
    with op.batch_alter_table('route_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_route_events_action'), type_='check')
        batch_op.create_check_constraint('action', actions)


def upgrade() -> None:
    with op.batch_alter_table('routes', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('returned_step', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('resume_from', sa.String(length=8), server_default='step', nullable=False))
    _checks(NEW_KINDS, NEW_ACTIONS)
    op.create_table(
        'route_versions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('route_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('original_digest', sa.String(length=64), nullable=False),
        sa.Column('pages', sa.Integer(), nullable=False),
        sa.Column('revision', sa.Integer(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=False),
        sa.Column('comment', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_route_versions_actor_id_users')),
        sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_route_versions_route_id_routes'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_route_versions')),
        sa.UniqueConstraint('route_id', 'version', name='uq_route_versions_route_version'),
    )


def downgrade() -> None:
    op.drop_table('route_versions')
    _checks(OLD_KINDS, OLD_ACTIONS)
    with op.batch_alter_table('routes', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('resume_from')
        batch_op.drop_column('version')
        batch_op.drop_column('returned_step')
