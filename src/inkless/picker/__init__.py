"""Pickers: find offices, people and fax numbers by name, kana or code instead of typing codes.

One service answers both the search endpoint (matches as the clerk types) and the forms
(a typed name or kana is resolved to the address, login or number it stands for), so the
forms work without JavaScript and codes keep working for power users and the API.
"""

from inkless.picker.service import Match, Picker, normalise

__all__ = ["Match", "Picker", "normalise"]
