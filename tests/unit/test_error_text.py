"""Service errors become page text in one place: the catalogue's sentence with the error's parameters,
or the generic sentence of its kind, never English on a Japanese page."""

from __future__ import annotations

import re
import string

import pytest
from babel.messages.pofile import read_po
from starlette.requests import Request

from inkless.errors import FaxError, NotFoundError, PolicyError, StorageError, ValidationError
from inkless.web.i18n import LOCALE_DIR, load_all
from inkless.web.render import Renderer


def _request(lang: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": [(b"cookie", f"lang={lang}".encode())],
                    "query_string": b""})


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(load_all(), "ja", {"organisation": "法務省", "node_id": "moj"})


def test_a_translated_sentence_is_filled_with_the_errors_parameters(renderer: Renderer) -> None:
    exc = NotFoundError("no office {code!r}", code="records")
    assert str(exc) == "no office 'records'"  # logs, CLI and API keep the English sentence
    assert renderer.error_text(_request("ja"), exc) == "部署「records」はありません。"
    assert renderer.error_text(_request("en"), exc) == "no office 'records'"
    assert renderer.error_detail(_request("ja"), exc) == "部署「records」はありません。"


def test_a_sentence_the_catalogue_lacks_is_said_as_its_kind(renderer: Renderer) -> None:
    cases = [
        (ValidationError("the widget {name} is bent", name="x"), "入力内容を受け付けられませんでした。"),
        (PolicyError("nobody may bend widgets"), "この操作を行う権限がありません。"),
        (NotFoundError("no widget 7"), "指定されたものが見つかりません。"),
        (FaxError("the widget line hummed"), "FAXを処理できませんでした。"),
    ]
    for exc, lead in cases:
        text = renderer.error_text(_request("ja"), exc)
        assert text.startswith(lead), (exc, text)
        assert renderer.error_detail(_request("ja"), exc) is None
        assert renderer.error_text(_request("en"), exc) == str(exc)


def test_server_side_failures_never_show_their_detail(renderer: Renderer) -> None:
    exc = StorageError("disk /var/lib/inkless is full")
    assert renderer.error_text(_request("ja"), exc).startswith("サーバーで要求を処理できませんでした。")
    assert "disk" not in renderer.error_text(_request("en"), exc)


def test_every_translated_error_sentence_uses_only_its_own_placeholders() -> None:
    # A Japanese sentence naming a placeholder the English one lacks would fail to format on a page.
    with (LOCALE_DIR / "ja" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="ja")
    fields = string.Formatter()
    checked = 0
    for message in catalog:
        if not message.id or not message.string or not isinstance(message.id, str):
            continue
        if not re.search(r"\{[a-z_]+[!:}]", message.id):
            continue
        own = {name for _, name, _, _ in fields.parse(message.id) if name}
        used = {name for _, name, _, _ in fields.parse(str(message.string)) if name}
        assert used <= own, message.id
        checked += 1
    assert checked >= 40
