"""One rule for file and cluster names everywhere: what we write, what we show, and how to get back.

File names come from `os.listdir`/`os.scandir` as `str`; bytes that are not valid UTF-8 (a Latin-1
`é` on an old archive) arrive as lone surrogates (`surrogateescape`: byte 0xE9 → '\\udce9'). Such a
string cannot be encoded as UTF-8, so pyarrow, Streamlit's protobuf messages, pandas and JSON writers
fail on it. Three helpers cover every use:

- `escape_name` (files we write: CSV, Parquet, JSON): printable, valid UTF-8 and reversible. An
  undecodable byte becomes the four characters `\\xNN` and a literal backslash becomes `\\\\`; nothing
  else changes, so ordinary names are written exactly as they are. `unescape_name` is its inverse, and
  `name_bytes`/`open_path` turn a name read back from our files into the original bytes / the file.
- `display_name` (every text shown in the UI or on a terminal): also valid UTF-8, not reversible, and
  with control characters and bidirectional overrides (U+202E "evil\\u202egnp.exe") made visible.
- `markdown_text` / `html_text`: `display_name` plus escaping for Streamlit Markdown (`$…$` LaTeX,
  `**`, backticks, `:red[…]`, `:smile:`) and for Plotly's HTML subset (`<b>`), so a name is shown as
  the characters it is, never interpreted.
"""

from __future__ import annotations

import html
import os
import re
import unicodedata
from pathlib import Path

# Invisible characters that reorder or hide text (Trojan Source): shown as \\uXXXX.
_BIDI_CONTROLS = frozenset(
    "\u061c\u200b\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"
)
# Control characters, line/paragraph separators, private-use and unassigned code points.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Co", "Cn"})
_SURROGATES = re.compile("[\ud800-\udfff]")
_UNESCAPE = re.compile(r"\\(\\|x[89a-fA-F][0-9a-fA-F]|u[dD][89a-fA-F][0-9a-fA-F]{2})")
# Markdown: characters that start syntax anywhere (code, emphasis, strikethrough, links and
# directives, HTML, LaTeX, entities, tables) are backslash-escaped; block markers only at the start.
MARKDOWN_SPECIALS = "\\`*_~[]<>$&|"
# An underscore between two letters or digits never starts emphasis (CommonMark), so snake_case
# file names are left readable.
_MARKDOWN_ANYWHERE = re.compile(r"([\\`*~\[\]<>$&|]|(?<![^\W_])_|_(?![^\W_]))")
_BLOCK_MARKER = re.compile(r"^( *)([#+=-](?=[ #=-]|$)|\d{1,9}(?=[.)](?: |$)))")
_LEADING_SPACES = re.compile("^ +")
# Streamlit finds ":smile:" shortcodes, ":material/…:" icons and bare URLs / e-mail addresses in the
# text after escapes are resolved, so those are broken with an invisible word joiner instead.
WORD_JOINER = "\u2060"
_UNLINK = re.compile(r"(?<=:)(?=[\w+/-])|(?=@)|(?i:(?<=\bwww)(?=\.))")


def escape_name(name: str | os.PathLike[str]) -> str:
    """The text we write to a file for `name`: valid UTF-8, printable, reversible by `unescape_name`.

    Undecodable bytes (surrogate-escaped) become `\\xNN`; other lone surrogates (possible on Windows)
    `\\udXXX`; a backslash becomes `\\\\`. Every other character is kept as is."""
    text = os.fspath(name)
    if "\\" not in text and not _SURROGATES.search(text):
        return text
    return _SURROGATES.sub(_escape_surrogate, text.replace("\\", "\\\\"))


def unescape_name(text: str) -> str:
    """The name `escape_name` wrote `text` for (surrogate-escaped, as `os.listdir` gives it).

    A backslash not followed by `\\`, `xNN` (NN ≥ 80) or `udXXX` is kept as typed."""
    if "\\" not in text:
        return text
    return _UNESCAPE.sub(_unescape_one, text)


def name_bytes(text: str) -> bytes:
    """The exact file-system bytes of a name read back from one of our files."""
    return os.fsencode(unescape_name(text))


def open_path(root: str | os.PathLike[str], text: str) -> Path:
    """The path of the file that a relative `path` column of our files names, under `root`."""
    return Path(os.fsdecode(os.path.join(os.fsencode(os.fspath(root)), name_bytes(text))))


def display_name(name: object, *, multiline: bool = False) -> str:
    """`name` as text for people: undecodable bytes as `\\xNN`, control and bidirectional-override
    characters as `\\xNN` / `\\uXXXX` escapes (so they cannot hide or reorder what is shown).
    `multiline` keeps line breaks and tabs (for messages and tracebacks, not for names)."""
    text = os.fspath(name) if isinstance(name, os.PathLike) else str(name)
    if text.isprintable() and not _SURROGATES.search(text) and not _BIDI_CONTROLS.intersection(text):
        return text  # the common case, checked fast
    keep = "\n\t" if multiline else ""
    return "".join(ch if ch in keep else _display_char(ch) for ch in text)


def markdown_text(name: object) -> str:
    """`display_name(name)` escaped for Streamlit Markdown (st.markdown, captions, alerts, widget
    labels): it shows as its characters; `$…$`, `**`, backticks, `:red[…]`, `<b>` are not interpreted."""
    escaped = _MARKDOWN_ANYWHERE.sub(r"\\\1", display_name(name))
    marker = _BLOCK_MARKER.match(escaped)
    if marker:  # "# x", "- x", "1. x" would become a heading or a list
        cut = marker.end(1) if not marker.group(2)[0].isdigit() else marker.end()
        escaped = escaped[:cut] + "\\" + escaped[cut:]
    escaped = _LEADING_SPACES.sub(lambda m: "&#32;" * len(m.group()), escaped)  # 4 would make code
    return _UNLINK.sub(WORD_JOINER, escaped)


def html_text(name: object) -> str:
    """`display_name(name)` escaped for Plotly's HTML subset (hover text, annotations)."""
    return html.escape(display_name(name), quote=False)


def has_undecodable(name: str) -> bool:
    """True when `name` holds bytes that are not valid UTF-8 (surrogate-escaped)."""
    return _SURROGATES.search(name) is not None


def is_hidden_char(ch: str) -> bool:
    """True for a character that does not show as itself: controls, bidirectional overrides,
    line separators, private-use, unassigned and surrogate code points."""
    return (
        ch in _BIDI_CONTROLS or "\ud800" <= ch <= "\udfff" or unicodedata.category(ch) in _HIDDEN_CATEGORIES
    )


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def _unescape_one(match: re.Match[str]) -> str:
    token = match.group(1)
    if token == "\\":
        return "\\"
    if token[0] == "x":
        return chr(0xDC00 + int(token[1:], 16))
    return chr(int(token[1:], 16))


def _display_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    if not is_hidden_char(ch):
        return ch  # spaces and joiners (emoji sequences) stay
    if 0xD800 <= code <= 0xDFFF or ch in _BIDI_CONTROLS:
        return f"\\u{code:04x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
