"""picker: kana of offices and users, and each office's fax address book

Revision ID: 0004_docview_picker
Revises: 0001
Create Date: 2026-12-03 17:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_docview_picker'
down_revision = '0001'
branch_labels = ('picker',)
depends_on = None


def upgrade() -> None:
    # New nullable columns are added in place: recreating offices or users on SQLite would cascade.
    with op.batch_alter_table('offices', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('kana', sa.String(length=200), nullable=True))
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('kana', sa.String(length=200), nullable=True))
    op.create_table(
        'fax_contacts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('office_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kana', sa.String(length=200), nullable=True),
        sa.Column('number', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['office_id'], ['offices.id'], name=op.f('fk_fax_contacts_office_id_offices'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fax_contacts')),
        sa.UniqueConstraint('office_id', 'number', name='uq_fax_contacts_office_number'),
    )


def downgrade() -> None:
    op.drop_table('fax_contacts')
    with op.batch_alter_table('users', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('kana')
    with op.batch_alter_table('offices', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('kana')
