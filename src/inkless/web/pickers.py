"""Pickers on the web: the search endpoint (pages and API), and resolving what a form's clerk typed.

``GET /directory/search?q=みんじ&kind=office`` answers matches as JSON for the small script that
fills a field's ``<datalist>`` as the clerk types; the same list is rendered into the page, so
the fields work without JavaScript, and a typed name or kana is resolved on the server.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from inkless.app import Node
from inkless.errors import InklessError
from inkless.picker import Match, Picker
from inkless.picker.service import KINDS, RemoteEntry, UnknownEntryError
from inkless.web.deps import Caller, api_caller, get_node, page_caller
from inkless.web.render import N_

router = APIRouter(include_in_schema=False)
api_router = APIRouter(tags=["directory"])

NodeDep = Annotated[Node, Depends(get_node)]

UNKNOWN = {
    "office": N_("No office matches “%(entry)s”. Choose one from the list or type its address (code@node)."),
    "person": N_("Nobody matches “%(entry)s”. Choose a person from the list or type their login."),
    "fax": N_("No fax number matches “%(entry)s”. Type the number or choose one from the address book."),
}
AMBIGUOUS = N_("“%(entry)s” matches several: %(candidates)s. Choose one.")
_KEY = "picker"


def picker_of(node: Node) -> Picker:
    """The node's picker (made on first use)."""
    found = node.extras.get(_KEY)
    if isinstance(found, Picker):
        return found

    def remote() -> list[RemoteEntry]:
        listing = getattr(node.peers, "remote_offices", None)
        if not callable(listing):
            return []
        return [RemoteEntry(o.address, o.name, getattr(o, "kana", None), getattr(o, "organisation", None),
                            o.fax_number) for o in listing()]

    picker = Picker(node.db, node.node_id, node.settings.organisation or node.node_id, remote)
    node.extras[_KEY] = picker
    return picker


def entry_error(gettext: Any, exc: InklessError) -> str | None:
    """The clerk's sentence for a typed entry that names nothing or several things (None for other errors)."""
    if not isinstance(exc, UnknownEntryError):
        return None
    if exc.candidates:
        return str(gettext(AMBIGUOUS) % {"entry": exc.entry, "candidates": "、".join(exc.candidates)})
    return str(gettext(UNKNOWN[exc.kind]) % {"entry": exc.entry})


def options(matches: list[Match]) -> list[dict[str, str]]:
    """``<option>`` values and labels for a datalist: the value, then name, kana and detail to match on."""
    return [{"value": m.value, "label": " ".join(x for x in (m.label, m.kana, m.detail) if x)} for m in matches]


def _search(node: Node, caller: Caller, q: str, kind: list[str] | None) -> dict[str, Any]:
    kinds = tuple(kind) if kind else KINDS
    matches = picker_of(node).search(q, caller.office.code, kinds)
    return {"query": q, "matches": [m.to_dict() for m in matches]}


KindQuery = Annotated[list[str] | None, Query(max_length=10, description="office, person or fax (repeatable)")]
TextQuery = Annotated[str, Query(max_length=100, description="name, kana (hiragana or katakana), code or number")]


@router.get("/directory/search")
def search_page(node: NodeDep, caller: Annotated[Caller, Depends(page_caller)], q: TextQuery = "",
                kind: KindQuery = None) -> dict[str, Any]:
    """Picker matches for the signed-in clerk (the pages' script calls this)."""
    return _search(node, caller, q, kind)


def remembered_procedure(node: Node, office: str, *, number: str = "", to: str = "") -> tuple[str, str] | None:
    """(code, name) of the procedure the office last chose for the fax ``number`` or an address in ``to``
    (comma-separated), while the catalogue offers it; None otherwise."""
    from inkless.metrics import memory

    if node.metrics is None:
        return None
    picker = picker_of(node)
    keys: list[str | None] = []
    if number.strip():
        try:  # a name or kana from the fax address book stands for its number
            number = picker.resolve_fax(number, office)
        except InklessError:
            pass
        keys.append(memory.fax_counterpart(number))
    for entry in (a.strip() for a in to.replace("、", ",").split(",")):
        if not entry:
            continue
        try:  # an office's name or kana stands for its address
            entry = picker.resolve_offices([entry], office)[0]
        except InklessError:
            pass
        keys.append(memory.address_counterpart(entry))
    found = node.metrics.remembered(office, keys)
    return (found.code, found.name) if found else None


@router.get("/procedures/remembered")
def remembered_page(node: NodeDep, caller: Annotated[Caller, Depends(page_caller)],
                    number: Annotated[str, Query(max_length=40)] = "",
                    to: Annotated[str, Query(max_length=4000)] = "") -> dict[str, Any]:
    """The procedure the caller's office last chose for this fax number or these addresses (the pages' script
    pre-selects it while the procedure field is empty)."""
    found = remembered_procedure(node, caller.office.code, number=number, to=to)
    return {"code": found[0], "name": found[1]} if found else {"code": None, "name": None}


@api_router.get("/directory/search")
def search_api(node: NodeDep, caller: Annotated[Caller, Depends(api_caller)], q: TextQuery = "",
               kind: KindQuery = None) -> dict[str, Any]:
    """Offices (this node's and pinned peers'), people and fax numbers matching ``q`` by name, kana, code or
    number; an empty ``q`` lists the office's recent and frequent recipients first."""
    return _search(node, caller, q, kind)
