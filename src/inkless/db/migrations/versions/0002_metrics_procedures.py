"""metrics: the procedure catalogue and its versions

Revision ID: 0002_metrics_procedures
Revises: 0001
Create Date: 2026-12-03 16:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_metrics_procedures'
down_revision = '0001'
branch_labels = ('metrics',)
depends_on = None


def upgrade() -> None:
    op.create_table('procedures',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('ministry', sa.String(length=200), nullable=False),
    sa.Column('office_code', sa.String(length=64), nullable=True),
    sa.Column('legal_basis', sa.Text(), nullable=False),
    sa.Column('seal_required', sa.String(length=16), nullable=False),
    sa.Column('fax_or_paper_allowed', sa.Boolean(), nullable=False),
    sa.Column('retired', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_procedures'))
    )
    with op.batch_alter_table('procedures', schema=None) as batch_op:
        batch_op.create_index('ix_procedures_office_code', ['office_code'], unique=False)
    op.create_table('procedure_versions',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('ministry', sa.String(length=200), nullable=False),
    sa.Column('office_code', sa.String(length=64), nullable=True),
    sa.Column('legal_basis', sa.Text(), nullable=False),
    sa.Column('seal_required', sa.String(length=16), nullable=False),
    sa.Column('fax_or_paper_allowed', sa.Boolean(), nullable=False),
    sa.Column('retired', sa.Boolean(), nullable=False),
    sa.Column('change', sa.String(length=16), nullable=False),
    sa.Column('changed_fields', sa.Text(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=128), nullable=False),
    sa.Column('audit_index', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('code', 'version', name=op.f('pk_procedure_versions'))
    )


def downgrade() -> None:
    op.drop_table('procedure_versions')
    with op.batch_alter_table('procedures', schema=None) as batch_op:
        batch_op.drop_index('ix_procedures_office_code')
    op.drop_table('procedures')
