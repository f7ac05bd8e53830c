"""How a user's text (a file name, an error naming a file) appears in what we print and
write: control characters escaped.

Why: a file name is hostile input like the file itself. Printed raw, a name holding ESC
sequences drives the user's terminal (retitles it, moves the cursor, hides lines: terminal
injection); a newline or `|` in it breaks the row of a Markdown report; bidirectional
overrides make it read as another name; bytes that are not UTF-8 (kept by Python as lone
surrogates) make printing raise. Every such character is shown as a visible escape
(`\\x1b`, `\\u202e`), so the name stays recognisable and nothing acts on it.
"""

from __future__ import annotations

import io
import re
from typing import TextIO

# C0 and C1 controls and DEL; bidirectional overrides and isolates ("Trojan source");
# the line and paragraph separators; lone surrogates (undecodable bytes of a file name).
_UNSAFE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape of a byte 0x80-0xff
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str, keep: str = "") -> str:
    """`text` with every control character escaped, except those in `keep`."""
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m), str(text))


def md_cell(text: object) -> str:
    """`text` as one cell of a Markdown table: escaped, `|` and backslashes made literal."""
    return escape_controls(str(text)).replace("\\", "\\\\").replace("|", "\\|")


def md_code(text: object) -> str:
    """`text` as Markdown inline code: escaped; double backticks, so a backtick in a
    folder name does not end the span."""
    return f"`` {escape_controls(str(text))} ``"


class SafeStream(io.TextIOBase):
    """A text stream that escapes control characters on the way out (newlines, tabs and
    carriage returns pass: the command line's own line breaks and progress lines)."""

    KEEP = "\n\t\r"

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(escape_controls(text, self.KEEP))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", "utf-8")
