"""admin: node operators and integrators, last login, locked accounts, office seal images

Revision ID: 0004_admin_console
Revises: 0001
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_admin_console'
down_revision = '0001'
branch_labels = ('admin',)
depends_on = None

ROLES_BEFORE = "role IN ('clerk', 'approver', 'admin')"
ROLES_AFTER = "role IN ('clerk', 'approver', 'admin', 'operator', 'integrator')"


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('locked_at', sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint(op.f('ck_users_role'), type_='check')
        batch.create_check_constraint(op.f('ck_users_role'), ROLES_AFTER)
    op.create_table('office_seal_images',
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('media_type', sa.String(length=32), nullable=False),
    sa.Column('image', sa.LargeBinary(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uploaded_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_office_seal_images_office_id_offices'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('office_id', name=op.f('pk_office_seal_images'))
    )


def downgrade() -> None:
    op.drop_table('office_seal_images')
    with op.batch_alter_table('users') as batch:
        batch.drop_constraint(op.f('ck_users_role'), type_='check')
        batch.create_check_constraint(op.f('ck_users_role'), ROLES_BEFORE)
        batch.drop_column('locked_at')
        batch.drop_column('last_login_at')
