"""Reading a JSON document from a file named on the command line, whatever the file holds.

Every management command that reads a document (``preview_posting``'s INVOICE.json and
CONFIG.json, ``import_flow``'s flow document, and later ones) goes through :func:`read_json_file`,
so that a bad file always ends in one clear message (:class:`JsonFileError`) and never in a
traceback: a missing or unreadable file, a file too large to be a document, bytes that are not
UTF-8 text (UTF-16, Latin-1, binary), text that is not JSON, NaN/Infinity, nesting deeper than any
document of ours, strings no database or terminal takes (a lone surrogate, a NUL character), a top
level that is not an object.

Plain Python: no Django, no ORM, so any layer may use it.
"""

from __future__ import annotations

import codecs
import json
import sys
from decimal import Decimal
from typing import IO, Any

# Our documents are kilobytes (an invoice of a thousand lines is about 400 KB); anything larger is
# the wrong file, and reading it whole would only cost memory.
MAX_BYTES = 16 * 1024 * 1024
# Our documents nest four or five levels deep (lines[0].partner...); Python's own parser gives up
# near a thousand, and code walking the result recursively may give up earlier.
MAX_DEPTH = 64

_UTF16_32_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


class JsonFileError(ValueError):
    """A file that does not hold a JSON document we can read.

    ``kind`` says which step failed: ``"read"`` (the file cannot be opened or read), ``"size"``,
    ``"encoding"``, ``"json"`` (not JSON), ``"depth"``, ``"text"`` (a string we refuse) or
    ``"shape"`` (the top level is not an object). ``detail`` is one line, without the path.
    """

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(detail)


# C0 controls, DEL, and what str.splitlines() also breaks on (NEL, line and paragraph separators).
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(32), 127, 0x85)} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (``\\x0a``), for a message that quotes a
    document's keys or values: a terminal shows it as one line, as it was written."""
    return text.translate(_CONTROLS)


def read_json_file(
    path: str,
    *,
    exact_numbers: bool = True,
    require_object: bool = True,
    max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
    stdin: IO[bytes] | None = None,
) -> Any:
    """The JSON document in ``path`` (``"-"``: standard input).

    ``exact_numbers``: JSON numbers with a fraction or exponent become ``Decimal`` (an amount
    written 120.10 must not become a float); otherwise ``float``. Either way NaN, Infinity and
    numbers too large for a float are refused. Raises :class:`JsonFileError`, never anything else
    for a bad file.
    """
    raw = _read_bytes(path, max_bytes, stdin)
    text = _decode(raw)
    data = _parse(text, exact_numbers)
    _check_values(data, max_depth)
    if require_object and not isinstance(data, dict):
        raise JsonFileError("shape", f"the document must be a JSON object, not {_json_type(data)}")
    return data


def _read_bytes(path: str, max_bytes: int, stdin: IO[bytes] | None) -> bytes:
    try:
        if path == "-":
            stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", None)
            if stream is None:
                raise JsonFileError("read", "standard input gives no bytes to read")
            raw = stream.read(max_bytes + 1)
        else:
            with open(path, "rb") as handle:
                raw = handle.read(max_bytes + 1)
    except OSError as error:
        raise JsonFileError("read", error.strerror or type(error).__name__) from None
    except ValueError as error:  # a path with a NUL character, say
        raise JsonFileError("read", str(error)) from None
    if len(raw) > max_bytes:
        raise JsonFileError(
            "size",
            f"the file is larger than {max_bytes // (1024 * 1024)} MiB: it cannot be one of our "
            "documents",
        )
    return raw


def _decode(raw: bytes) -> str:
    for bom, name in _UTF16_32_BOMS:
        if raw.startswith(bom):
            raise JsonFileError("encoding", f"the file is {name} text: save it as UTF-8")
    if raw.startswith(codecs.BOM_UTF8):  # Windows editors write one; harmless
        raw = raw[len(codecs.BOM_UTF8) :]
    if b"\x00" in raw:
        raise JsonFileError(
            "encoding",
            "the file holds NUL bytes: it is UTF-16 text or not text at all; save it as UTF-8",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        raise JsonFileError(
            "encoding",
            f"the file is not UTF-8 text (byte 0x{byte:02x} at offset {error.start}; Latin-1 or "
            "Windows-1252?): save it as UTF-8",
        ) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large")
    return value


def _parse(text: str, exact_numbers: bool) -> Any:
    if not text.strip():
        raise JsonFileError("json", "the file is empty")
    try:
        return json.loads(
            text,
            parse_float=Decimal if exact_numbers else _float,
            parse_constant=_refuse_constant,
        )
    except RecursionError:
        raise JsonFileError("depth", "the document is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, a refused constant, an integer too long
        raise JsonFileError("json", str(error).splitlines()[0]) from None


def _check_values(data: Any, max_depth: int) -> None:
    """Depth and strings, walked without recursion (the document may be deep)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > max_depth:
                raise JsonFileError(
                    "depth", f"the document is nested more than {max_depth} levels deep"
                )
            if isinstance(value, dict):
                for key, item in value.items():
                    _check_text(key)
                    stack.append((item, depth + 1))
            else:
                stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise JsonFileError("text", "a string holds a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonFileError(
            "text", "a string holds a lone surrogate (a \\ud800-\\udfff escape without its pair)"
        ) from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list"
