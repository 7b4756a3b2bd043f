"""The worker protocol: how the judge and the code under test talk, in ``.npy`` frames.

A *frame* is one array in NumPy's ``.npy`` format (version 1, 2 or 3; no pickled objects), so
any language can read and write it (``tests/lmp_kernel.cpp`` does it in C++ in 40 lines). The
judge writes two frames to the worker's standard input for every problem:

1. the losses: a 1-D array of ``float64`` (or ``float32`` for a float32 run);
2. the parameters: a ``float64`` array ``[p, gamma, tau]`` (``inf`` for an infinite ``p`` or ``tau``);

and reads one frame back from the worker's standard output: the weights (a 1-D array of any real
numeric dtype), or a text frame ``"STATUS: message"`` (``np.array("raised: ...")``; STATUS one of
``REPLY_STATUSES``) when the worker could not answer. Anything the worker writes to its standard
error is kept, up to a bound, as the case's captured output. Standard output carries frames and
nothing else: a program that prints to it breaks the protocol, and the case is ``crashed``.

The worker answers problems one after another until its standard input closes, then exits. A
Python program reads a frame from a pipe with ``read_frame(sys.stdin.buffer)`` (``np.load`` needs a
file it can seek in) and writes one with ``np.save(sys.stdout.buffer, weights)``.
"""

from __future__ import annotations

import functools
import io
import math
import struct

import numpy as np

__all__ = ["REPLY_STATUSES", "ProtocolError", "encode", "decode", "frame_length", "message", "read_frame"]

REPLY_STATUSES = ("raised", "wrong-type", "mutates-input")
_MAGIC = b"\x93NUMPY"


class ProtocolError(ValueError):
    """A frame that is not a readable ``.npy`` array of the kinds the protocol allows."""


def encode(array: np.ndarray) -> bytes:
    """One frame: ``array`` in ``.npy`` format."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
    return buffer.getvalue()


def message(status: str, text: str) -> bytes:
    """The text frame a worker sends instead of weights (``status`` from ``REPLY_STATUSES``)."""
    return encode(np.array(f"{status}: {text}"))


def frame_length(data: bytes, max_bytes: int) -> int | None:
    """The length in bytes of the frame that starts ``data``, once its header is there (None before).

    Raises ``ProtocolError`` for anything but a ``.npy`` frame of a numeric or text dtype, or one
    longer than ``max_bytes``.
    """
    head = _complete_header(data, max_bytes)
    if head is None:
        return None
    start, shape, _, dtype = head
    total = start + math.prod(shape) * dtype.itemsize
    if total > max_bytes:
        raise ProtocolError(f"a frame of {total} bytes (shape {shape}, dtype {dtype}), more than the "
                            f"{max_bytes} this problem's answer can need")
    return total


def decode(frame: bytes | bytearray) -> np.ndarray:
    """The array of one complete frame (as checked by ``frame_length``); it shares ``frame``'s
    memory, so it is writeable where ``frame`` is a ``bytearray``."""
    head = _complete_header(frame, len(frame))
    if head is None:
        raise ProtocolError("an incomplete .npy frame")
    start, shape, fortran, dtype = head
    count = math.prod(shape)
    if start + count * dtype.itemsize != len(frame):
        raise ProtocolError(f"a .npy frame of {len(frame)} bytes whose header says {start + count * dtype.itemsize}")
    array = np.frombuffer(frame, dtype=dtype, count=count, offset=start)
    return array.reshape(shape, order="F" if fortran else "C")


def read_frame(stream) -> np.ndarray | None:
    """One frame from a binary ``stream`` (a pipe will do), as a writeable array; None at the end of
    the input (or where it holds no frame)."""
    head = stream.read(12)  # no frame is shorter
    try:
        start = _data_offset(head, 1 << 20) if len(head) == 12 else None
        if start is None or start < 12:
            return None
        head += stream.read(start - len(head))
        shape, fortran, dtype = _header(head[:start])
    except ProtocolError:
        return None
    data = bytearray(math.prod(shape) * dtype.itemsize)
    if stream.readinto(data) != len(data):
        return None
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _data_offset(data: bytes | bytearray, max_bytes: int) -> int | None:
    """Where the data of the frame that starts ``data`` begins, read off its first 12 bytes (None
    while fewer are there)."""
    if len(data) < 10:
        return None if _MAGIC.startswith(bytes(data[:6])) else _bad(data)
    if not data.startswith(_MAGIC):
        _bad(data)
    major = data[6]
    if major not in (1, 2, 3):
        raise ProtocolError(f"unsupported .npy version {major}")
    size_bytes = 2 if major == 1 else 4
    if len(data) < 8 + size_bytes:
        return None
    header_length = struct.unpack("<H" if major == 1 else "<I", data[8:8 + size_bytes])[0]
    start = 8 + size_bytes + header_length
    if start > max_bytes:
        raise ProtocolError(f"a frame header of {header_length} bytes")
    return start


def _complete_header(data: bytes | bytearray, max_bytes: int):
    """``(data offset, shape, fortran_order, dtype)`` of the frame that starts ``data``, once its whole
    header is there (None before)."""
    start = _data_offset(data, max_bytes)
    if start is None or len(data) < start:
        return None
    return (start, *_header(bytes(data[:start])))


@functools.lru_cache(maxsize=256)
def _header(head: bytes) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of a frame's complete header (magic included), read by NumPy
    (cached: a run sends the same few headers again and again)."""
    stream = io.BytesIO(head[8:])
    try:
        reader = np.lib.format.read_array_header_1_0 if head[6] == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(stream)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ProtocolError(f"an unreadable .npy header ({exc})") from None
    if dtype.hasobject or dtype.kind not in "biufcU":
        raise ProtocolError(f"a frame of dtype {dtype}; frames hold numbers or text")
    return tuple(shape), bool(fortran), dtype


def _bad(data):
    raise ProtocolError(f"bytes that are not a .npy frame: {bytes(data[:40])!r}")
