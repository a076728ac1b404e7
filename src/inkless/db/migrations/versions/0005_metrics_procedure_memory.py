"""metrics: the procedure an office last chose for a counterpart (fax number, office address, e-mail address)

Revision ID: 0005_metrics_procedure_memory
Revises: 0003_metrics_rollups
Create Date: 2026-12-04 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_metrics_procedure_memory'
down_revision = '0003_metrics_rollups'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('procedure_memory',
    sa.Column('office_id', sa.Integer(), nullable=False),
    sa.Column('counterpart', sa.String(length=300), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('chosen_by', sa.String(length=64), nullable=False),
    sa.Column('chosen_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_procedure_memory_office_id_offices')),
    sa.PrimaryKeyConstraint('office_id', 'counterpart', name=op.f('pk_procedure_memory'))
    )


def downgrade() -> None:
    op.drop_table('procedure_memory')
