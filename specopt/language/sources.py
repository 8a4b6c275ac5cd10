"""Reading spec files: as UTF-8 text, and never more than the size limit.

Used by every reader of spec files (``specopt.load``, data plans, ``fmt``).
At most a little more than the limit (``parse.MAX_SOURCE_CHARS`` characters)
is read, so a huge file or ``/dev/zero`` costs no more than a file just over it.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from . import parse
from ..diagnostics import Diagnostic, Source, Span, SpecError

_CHUNK = 1 << 16
_SHOWN = 120


def read_spec_text(path: str | Path) -> str:
    """Read a spec file as UTF-8; undecodable bytes (E104) and oversized files (E102) are positioned errors.

    At most a little more than the size limit is read, so a huge file or
    ``/dev/zero`` costs no more than a file just over the limit.
    """
    return decode_spec(read_spec_bytes(path), str(path))


def read_spec_bytes(path: str | Path) -> bytes:
    """The bytes of a spec file, reading only as far as needed to find it is over the size limit (E102)."""
    limit = parse.MAX_SOURCE_CHARS  # read when called: tests lower it
    counter = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
    chunks, chars = [], 0
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            chunks.append(chunk)
            chars += len(counter.decode(chunk))
            if chars > limit:
                head = b"".join(chunks)[:_SHOWN].decode("utf-8-sig", errors="replace")  # for line 1 only
                raise SpecError([Diagnostic("E102", f"spec is too large (more than {limit} characters, "
                                            "the limit)", Span(start=0, end=0),
                                            "split the spec, or check that the right file was passed")],
                                Source(head, str(path)))
    return b"".join(chunks)


def decode_spec(data: bytes, name: str) -> str:
    """Decode a spec file's bytes as UTF-8 (a byte-order mark is dropped); bad bytes are E104."""
    data = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = data.decode("utf-8", errors="replace")
        at = len(data[:exc.start].decode("utf-8", errors="replace"))
        raise SpecError([Diagnostic("E104", f"the file is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                                    Span(start=at, end=at + 1), "save the spec as UTF-8 text")],
                        Source(text, name)) from None
