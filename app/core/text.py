"""Text that users write and others read: control characters out, and cells a spreadsheet would run kept as text.

A control character (NUL, ESC, a form feed...) in one seller's title would make the XML merchant feed
ill-formed for every partner (XML 1.0 forbids most of them), and PostgreSQL refuses NUL outright. Lone
surrogates (JSON allows "\\ud800") cannot be stored as UTF-8 either. Titles and categories keep none of
them (tabs and line breaks become spaces); descriptions keep tabs and line breaks (CR LF and CR become LF).
"""
import re
import unicodedata

_LINE_BREAKS = re.compile(r"\r\n?")
_NONCHARACTERS = frozenset("\ufffe\uffff")


def _kept(char, multiline):
    if multiline and char in "\t\n":
        return True
    return unicodedata.category(char) not in ("Cc", "Cs") and char not in _NONCHARACTERS


def clean_text(value, *, multiline=False):
    """`value` without control characters, lone surrogates and the noncharacters U+FFFE and U+FFFF.

    multiline=False (titles, categories): tabs and line breaks become spaces. multiline=True
    (descriptions): tabs and line breaks stay, CR LF and a lone CR become LF.
    """
    if not isinstance(value, str):
        return value
    value = _LINE_BREAKS.sub("\n", value)
    if not multiline:
        value = value.replace("\t", " ").replace("\n", " ")
    if value.isprintable():  # the usual case: nothing to take out
        return value
    return "".join(char for char in value if _kept(char, multiline))


# A spreadsheet runs a cell starting with one of these as a formula, and titles and usernames come from
# other users: such text gets a leading apostrophe. Numbers (a negative amount such as -12.50) stay as they are.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def spreadsheet_cell(value):
    """A cell of a CSV or TSV export: "" for None, and a leading ' before text that a spreadsheet would run."""
    if value is None:
        return ""
    text = str(value)
    if text.startswith(_FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text
