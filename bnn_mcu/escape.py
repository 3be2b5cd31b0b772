"""User-controlled text (file names, model and layer names) in generated non-C text.

A model converted from `m\n[env:evil]\nbuild_flags = !touch X\n;.pt` is named after its file:
pasted raw into platformio.ini, that name was a new env whose `!` build flag runs a shell
command. Every name that reaches a generated file goes through one of these (the C
escapes are codegen.generate.c_string / c_comment). JSON is written with json.dumps.
"""

from __future__ import annotations

#: Longest name kept in generated text (longer ones end with "...").
MAX_TEXT = 200
# Inline Markdown/HTML specials; the text never starts a line, so `#`, `-`, `+`, `1.` are plain.
_MARKDOWN_SPECIAL = set("\\`*_[]<>|!~&")


def one_line(text, limit: int = MAX_TEXT) -> str:
    """Printable text on one line: every line break (\\n, \\r, \\v, \\f, U+0085, U+2028...) and
    control character becomes '?'; at most `limit` characters."""
    flat = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def ini_comment(text) -> str:
    """Text for the rest of a `;` comment line of an INI file (platformio.ini): one line, so
    it cannot start a section, an option or a continuation line."""
    return one_line(text)


def markdown_text(text) -> str:
    """Text shown literally in Markdown (a heading, a table cell): one line, every Markdown
    and HTML special character backslash-escaped (no links, images, tags, cell breaks)."""
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in one_line(text))
