"""web: the browser's user agent on each session (the sessions page lists them)

Revision ID: 0002_web
Revises: 0001
Create Date: 2026-12-03 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0002_web'
down_revision = '0001'
branch_labels = ('web',)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('web_sessions') as batch:
        batch.add_column(sa.Column('user_agent', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('web_sessions') as batch:
        batch.drop_column('user_agent')
