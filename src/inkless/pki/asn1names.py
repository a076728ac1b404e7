"""Every OID name that asn1crypto and pyHanko register, known whatever was imported first.

asn1crypto turns a name into its OID with a table it builds once per class, the first time a value
of that class is made (``ValueMap._setup``). Modules that add names afterwards — ``asn1crypto.tsp``
(``tst_info``, ``signing_certificate_v2``), ``asn1crypto.pdf`` and pyHanko's CAdES attributes —
stay unknown by name for the life of the process: a node whose first work was to deliver an
envelope (which builds CMS attributes) could no longer seal ("invalid literal for int() with base
10: 'tst_info'"). Importing this module registers those names and rebuilds the name tables built so
far from the complete maps.

Every module that uses pyHanko imports this one after pyHanko.
"""

from __future__ import annotations

from asn1crypto import core, pdf, tsp  # noqa: F401  (importing them registers their names)
from pyhanko.sign.ades import cades_asn1  # noqa: F401  (registers the CAdES attributes)


def refresh_name_tables() -> int:
    """Rebuild every name → OID table built so far from its complete map; returns how many."""
    refreshed = 0
    seen: set[type] = set()
    stack: list[type] = [core.ObjectIdentifier]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        names = vars(cls).get("_map")
        if names and vars(cls).get("_reverse_map") is not None:
            cls._reverse_map = {name: oid for oid, name in names.items()}  # type: ignore[attr-defined]
            refreshed += 1
    return refreshed


refresh_name_tables()
