"""metrics: roll-ups, paper records, targets, procedure rules, heartbeats; procedures on messages, faxes, routes; token scope

Revision ID: 0003_metrics_rollups
Revises: 0002_metrics_procedures, 0003_delivery_fax_state, 0003_fax_sip, 0002_seals
Create Date: 2026-12-03 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0003_metrics_rollups'
# The columns below go on tables of the delivery, fax and seals branches: this revision joins them.
down_revision = ('0002_metrics_procedures', '0003_delivery_fax_state', '0003_fax_sip', '0002_seals')
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('metrics_rollup',
    sa.Column('period', sa.String(length=10), nullable=False),
    sa.Column('office_code', sa.String(length=64), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('metric', sa.String(length=24), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('period', 'office_code', 'procedure_code', 'metric', name=op.f('pk_metrics_rollup'))
    )
    with op.batch_alter_table('metrics_rollup', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_rollup_period_metric', ['period', 'metric', 'value'], unique=False)
    op.create_table('metrics_paper_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('office_code', sa.String(length=64), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('received', sa.Integer(), nullable=False),
    sa.Column('sealed', sa.Integer(), nullable=False),
    sa.Column('recorded_by', sa.String(length=128), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metrics_paper_records'))
    )
    with op.batch_alter_table('metrics_paper_records', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_paper_records_day', ['day'], unique=False)
    op.create_table('metrics_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('office_code', sa.String(length=64), nullable=True),
    sa.Column('measure', sa.String(length=24), nullable=False),
    sa.Column('reduction_percent', sa.Integer(), nullable=False),
    sa.Column('baseline_from', sa.Date(), nullable=False),
    sa.Column('baseline_to', sa.Date(), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_metrics_targets'))
    )
    op.create_table('procedure_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('pattern', sa.String(length=128), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('did', 'tsi', 'cid', 'keyword')", name=op.f('ck_procedure_rules_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_procedure_rules')),
    sa.UniqueConstraint('kind', 'pattern', name='uq_procedure_rules_kind_pattern')
    )
    op.create_table('metrics_heartbeats',
    sa.Column('worker', sa.String(length=128), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('worker', name=op.f('pk_metrics_heartbeats'))
    )
    op.create_table('metrics_aggregate_targets',
    sa.Column('node_id', sa.String(length=32), nullable=False),
    sa.Column('added_by', sa.String(length=128), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('node_id', name=op.f('pk_metrics_aggregate_targets'))
    )
    op.create_table('metrics_aggregates',
    sa.Column('node_id', sa.String(length=32), nullable=False),
    sa.Column('week', sa.String(length=10), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('counts', sa.Text(), nullable=False),
    sa.Column('jws', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('replaced', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('node_id', 'week', name=op.f('pk_metrics_aggregates'))
    )
    for table in ('inbox', 'fax_jobs', 'fax_calls', 'routes'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('procedure_code', sa.String(length=64), nullable=True))
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('scope')
    op.drop_table('metrics_heartbeats')
    op.drop_table('metrics_aggregates')
    op.drop_table('metrics_aggregate_targets')
    for table in ('routes', 'fax_calls', 'fax_jobs', 'inbox'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('procedure_code')
    op.drop_table('procedure_rules')
    op.drop_table('metrics_targets')
    with op.batch_alter_table('metrics_paper_records', schema=None) as batch_op:
        batch_op.drop_index('ix_metrics_paper_records_day')
    op.drop_table('metrics_paper_records')
    with op.batch_alter_table('metrics_rollup', schema=None) as batch_op:
        batch_op.drop_index('ix_metrics_rollup_period_metric')
    op.drop_table('metrics_rollup')
