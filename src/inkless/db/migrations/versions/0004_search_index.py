"""search: the keyed gram index of inbox rows and sent messages, its engine structure, unread counts

Revision ID: 0004_search_index
Revises: 0003_delivery_fax_state
Create Date: 2026-12-03 17:00:00

The index holds keyed tokens derived from the master key: existing messages are indexed here
(their subjects decrypted in memory) when the migration is given the node's key, as ``inkless
migrate`` and ``inkless init`` do. A database with messages cannot be upgraded without it.
"""

import sqlalchemy as sa
from alembic import context, op

revision = '0004_search_index'
down_revision = '0003_delivery_fax_state'
branch_labels = None
depends_on = None

# SQLite: one FTS5 table per kind, external content over search_index, whose rowid is the listed row's own
# id (the inbox row's id; the index row's id for sent messages, whose ids are UUIDs). A search then
# yields inbox ids straight from the FTS doclists, without reading a search_index row per match.
FTS_TABLES = {'search_fts_inbox': 'inbox_id', 'search_fts_sent': 'id'}
FTS_TRIGGERS = (
    "CREATE TRIGGER search_fts_ai AFTER INSERT ON search_index BEGIN "
    "INSERT INTO search_fts_inbox(rowid, tokens) SELECT new.inbox_id, new.tokens WHERE new.inbox_id IS NOT NULL; "
    "INSERT INTO search_fts_sent(rowid, tokens) SELECT new.id, new.tokens WHERE new.sent_id IS NOT NULL; END",
    "CREATE TRIGGER search_fts_ad AFTER DELETE ON search_index BEGIN "
    "INSERT INTO search_fts_inbox(search_fts_inbox, rowid, tokens) "
    "SELECT 'delete', old.inbox_id, old.tokens WHERE old.inbox_id IS NOT NULL; "
    "INSERT INTO search_fts_sent(search_fts_sent, rowid, tokens) "
    "SELECT 'delete', old.id, old.tokens WHERE old.sent_id IS NOT NULL; END",
)


def upgrade() -> None:
    op.create_table('search_index',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inbox_id', sa.Integer(), nullable=True),
    sa.Column('sent_id', sa.String(length=36), nullable=True),
    sa.Column('tokens', sa.Text(), nullable=False),
    sa.CheckConstraint('(inbox_id IS NULL) <> (sent_id IS NULL)', name=op.f('ck_search_index_one_target')),
    sa.ForeignKeyConstraint(['inbox_id'], ['inbox.id'], name=op.f('fk_search_index_inbox_id_inbox'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['sent_id'], ['messages.id'], name=op.f('fk_search_index_sent_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_search_index')),
    sa.UniqueConstraint('inbox_id', name=op.f('uq_search_index_inbox_id')),
    sa.UniqueConstraint('sent_id', name=op.f('uq_search_index_sent_id'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE INDEX ix_search_index_tokens_gin ON search_index USING gin (CAST(tokens AS tsvector))')
    else:
        for table, rowid in FTS_TABLES.items():
            op.execute(f"CREATE VIRTUAL TABLE {table} USING fts5(tokens, content='search_index', "
                       f"content_rowid='{rowid}', tokenize='ascii')")
        for trigger in FTS_TRIGGERS:
            op.execute(trigger)
    # Unread counts per office and folder read only the unread rows.
    op.create_index('ix_inbox_unread', 'inbox', ['office_id', 'source'], unique=False,
                    sqlite_where=sa.text('opened_at IS NULL'), postgresql_where=sa.text('opened_at IS NULL'))
    _backfill()


def _backfill() -> None:
    conn = op.get_bind()
    inbox = sa.table('inbox', sa.column('id'), sa.column('message_id'), sa.column('sender'),
                     sa.column('subject_enc', sa.LargeBinary))
    messages = sa.table('messages', sa.column('id'), sa.column('sender_login'), sa.column('subject_enc', sa.LargeBinary))
    outbox = sa.table('outbox', sa.column('message_id'), sa.column('recipient'))
    has_rows = conn.execute(sa.select(inbox.c.id).limit(1)).first() or conn.execute(
        sa.select(messages.c.id).limit(1)).first()
    if not has_rows:
        return
    box = context.config.attributes.get('box')
    if box is None:
        raise RuntimeError('indexing existing messages needs the master key: run `inkless migrate`')
    from inkless.search.index import SearchIndex, inbox_texts, sent_texts, tokens_of

    index = SearchIndex(tokens_of(box))
    # Offices of this node are found by name as well as by address, as the service indexes them.
    node_meta = sa.table('node_meta', sa.column('key'), sa.column('value'))
    offices = sa.table('offices', sa.column('code'), sa.column('name'))
    node_id = conn.execute(sa.select(node_meta.c.value).where(node_meta.c.key == 'node_id')).scalar()
    names = {f'{r.code}@{node_id}': r.name for r in conn.execute(sa.select(offices)).all()}
    for row in conn.execute(sa.select(inbox)).all():
        subject = box.open(row.subject_enc, f'inkless/subject/{row.message_id}').decode()
        index.add_inbox(conn, row.id, inbox_texts(subject, row.sender, names.get(row.sender)))
    recipients: dict[str, list[str]] = {}
    for row in conn.execute(sa.select(outbox)).all():
        recipients.setdefault(row.message_id, []).append(row.recipient)
    for row in conn.execute(sa.select(messages)).all():
        subject = box.open(row.subject_enc, f'inkless/subject/{row.id}').decode()
        to = recipients.get(row.id, [])
        index.add_sent(conn, row.id, sent_texts(subject, to, [names[a] for a in to if a in names], row.sender_login))


def downgrade() -> None:
    op.drop_index('ix_inbox_unread', table_name='inbox', sqlite_where=sa.text('opened_at IS NULL'),
                  postgresql_where=sa.text('opened_at IS NULL'))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP INDEX ix_search_index_tokens_gin')
    else:
        for name in ('search_fts_ai', 'search_fts_ad'):
            op.execute(f'DROP TRIGGER {name}')
        for table in FTS_TABLES:
            op.execute(f'DROP TABLE {table}')
    op.drop_table('search_index')
