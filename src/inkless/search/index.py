"""The search seam: write index rows with the messages they describe, and match a query on either engine.

One row of keyed gram tokens per inbox row and per sent message (``search_index``), written by the
service code in the transaction that writes the message. Matching is the engine's own full-text
search over those tokens:

* SQLite: FTS5 tables (``tokenize='ascii'``, external content over ``search_index``, kept in step by
  triggers; ``search_fts_inbox`` has the inbox row's id as its rowid, ``search_fts_sent`` the index
  row's), queried with ``MATCH '"t…" AND "t…"'``;
* PostgreSQL: a GIN index over ``tokens::tsvector``, queried with ``@@ 't… & t…'::tsquery``.

Both give the same answers (the tests run on both); which one is used follows the connection's
dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, TextClause, cast, func, insert, literal, select, text
from sqlalchemy.dialects.postgresql import TSQUERY, TSVECTOR

from inkless.db.tables_search import search_index
from inkless.pki.keystore import SecretBox
from inkless.search.grams import GramTokens, number_forms

KEY_PURPOSE = "inkless/search-index/v1"
# A query of more terms than this is cut: each term is one more condition on the index.
MAX_QUERY_GRAMS = 64


def tokens_of(box: SecretBox) -> GramTokens:
    """The node's gram tokens, keyed by its master key."""
    return GramTokens(box.derive_key(KEY_PURPOSE))


def inbox_texts(subject: str, sender: str, sender_name: str | None = None, body: str | None = None) -> list[str]:
    """What a received message is found by: subject, sender (a fax number also as digits), office name, OCR text."""
    texts = [subject]
    if sender.startswith("fax:"):
        texts += number_forms(sender[4:])
    else:
        texts.append(sender)
    if sender_name:
        texts.append(sender_name)
    if body:
        texts.append(body)
    return texts


def sent_texts(subject: str, recipients: Iterable[str], names: Iterable[str] = (), sender_login: str = "") -> list[str]:
    """What a sent message is found by: subject, recipient addresses and office names, the sending clerk."""
    return [subject, *recipients, *names, sender_login]


class SearchIndex:
    """Index rows and query conditions over ``search_index``, for SQLite (FTS5) and PostgreSQL (GIN)."""

    def __init__(self, tokens: GramTokens) -> None:
        self._tokens = tokens

    def add_inbox(self, conn: Connection, inbox_id: int, texts: Sequence[str]) -> None:
        """Index a received message (call in the transaction that inserted its inbox row)."""
        conn.execute(insert(search_index).values(inbox_id=inbox_id, tokens=self._tokens.document(texts)))

    def add_sent(self, conn: Connection, message_id: str, texts: Sequence[str]) -> None:
        """Index a sent message (call in the transaction that inserted its row)."""
        conn.execute(insert(search_index).values(sent_id=message_id, tokens=self._tokens.document(texts)))

    def query_tokens(self, query: str) -> list[str]:
        """The tokens every match must hold (empty: the query has no characters)."""
        return self._tokens.query(query)[:MAX_QUERY_GRAMS]

    def inbox_ids(self, dialect: str, query: str) -> Select[Any] | TextClause | None:
        """The ids of inbox rows matching ``query`` (a subquery for ``IN``); None for an empty query."""
        tokens = self.query_tokens(query)
        if not tokens:
            return None
        if dialect == "postgresql":
            return select(search_index.c.inbox_id).where(_tsquery(tokens), search_index.c.inbox_id.is_not(None))
        # The FTS table's rowid is the inbox row's id: no search_index row is read.
        return text("SELECT rowid FROM search_fts_inbox WHERE search_fts_inbox MATCH :m").bindparams(m=_match(tokens))

    def sent_ids(self, dialect: str, query: str) -> Select[Any] | None:
        """The ids of sent messages matching ``query`` (a subquery for ``IN``); None for an empty query."""
        tokens = self.query_tokens(query)
        if not tokens:
            return None
        if dialect == "postgresql":
            condition = _tsquery(tokens)
        else:
            condition = search_index.c.id.in_(
                text("SELECT rowid FROM search_fts_sent WHERE search_fts_sent MATCH :s").bindparams(s=_match(tokens)))
        return select(search_index.c.sent_id).where(condition, search_index.c.sent_id.is_not(None))

    def count_inbox(self, conn: Connection, query: str) -> int:
        """How many inbox rows match ``query`` (SQLite: from the FTS doclists alone)."""
        tokens = self.query_tokens(query)
        if not tokens:
            return 0
        if conn.dialect.name == "postgresql":
            found = conn.execute(select(func.count()).select_from(search_index).where(
                _tsquery(tokens), search_index.c.inbox_id.is_not(None))).scalar()
        else:
            found = conn.execute(text("SELECT count(*) FROM search_fts_inbox WHERE search_fts_inbox MATCH :m"),
                                 {"m": _match(tokens)}).scalar()
        return int(found or 0)


def _match(tokens: list[str]) -> str:
    # Tokens are "t" + base32 (a-z, 2-7): nothing in them needs quoting in either query language.
    return " AND ".join(f'"{t}"' for t in tokens)


def _tsquery(tokens: list[str]) -> ColumnElement[bool]:
    return cast(search_index.c.tokens, TSVECTOR).op("@@")(cast(literal(" & ".join(tokens)), TSQUERY))
