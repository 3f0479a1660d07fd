"""Metadata stripping for uploaded files: JPEG and PNG streamed, PDF whole.

What is kept is an allow-list: anything not needed to show the image or the document is dropped,
so a new kind of metadata chunk or segment cannot slip through.
"""

import io
import logging
import zlib
from abc import ABC, abstractmethod
from typing import Literal, Protocol

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    PdfObject,
    StreamObject,
)

Kind = Literal["jpeg", "png", "pdf"]

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PDF_MAGIC = b"%PDF-"

# pypdf's warnings about damaged files can quote the file's bytes, which must never reach a log.
logging.getLogger("pypdf").setLevel(logging.CRITICAL + 1)


class MetadataError(Exception):
    """A file that cannot be cleaned: truncated, malformed or of an unsupported variant."""


class MetadataStripper(Protocol):
    def feed(self, data: bytes) -> bytes:
        """Take the next piece of the file; return the cleaned bytes that can be emitted so far."""
        ...

    def finish(self) -> bytes:
        """Return the rest of the cleaned file; raise MetadataError if the file was incomplete."""
        ...


def detect_kind(head: bytes) -> Kind | None:
    """The kind of a file from its first bytes (never from its name or declared type)."""
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(PDF_MAGIC):
        return "pdf"
    return None


def stripper_for(kind: Kind | None) -> MetadataStripper:
    """A streaming stripper for JPEG and PNG; a pass-through for anything else."""
    if kind == "jpeg":
        return JpegStripper()
    if kind == "png":
        return PngStripper()
    return PassThrough()


class PassThrough:
    """Emits the file unchanged (kinds we do not clean, or PDF handled by strip_pdf)."""

    def feed(self, data: bytes) -> bytes:
        return bytes(data)

    def finish(self) -> bytes:
        return b""


# --- JPEG -------------------------------------------------------------------------------------

_SOI = 0xD8
_EOI = 0xD9
_SOS = 0xDA
_APP0 = 0xE0
_APP1 = 0xE1
_APP14 = 0xEE
# Segments needed to decode: SOFn, DHT, DAC (C0-CF without the reserved JPG, C8), DQT, DNL, DRI,
# DHP, EXP. SOS is handled on its own because entropy-coded data follows it.
_JPEG_KEPT = frozenset(c for c in range(0xC0, 0xD0) if c != 0xC8) | {0xDB, 0xDC, 0xDD, 0xDE, 0xDF}
# Inspected whole, then rewritten to their harmless part or dropped.
_JPEG_INSPECTED = frozenset({_APP0, _APP1, _APP14})
# APPn (EXIF, XMP, ICC, IPTC/Photoshop, MPF, maker data…) and COM are dropped unread.
_JPEG_DROPPED = frozenset(range(0xE0, 0xF0)) - _JPEG_INSPECTED | {0xFE}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM

_START, _MARKER, _SEGMENT_SKIP, _SCAN, _DONE = range(5)

_ORIENTATION_TAG = 0x0112


def _exif_orientation(payload: bytes) -> int | None:
    """The EXIF Orientation (2-8) in IFD0 of an APP1 payload, or None when absent or 1."""
    if not payload.startswith(b"Exif\x00\x00"):
        return None
    tiff = payload[6:]
    order: Literal["little", "big"]
    if tiff[:4] == b"II*\x00":
        order = "little"
    elif tiff[:4] == b"MM\x00*":
        order = "big"
    else:
        return None
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return None
    for index in range(int.from_bytes(tiff[ifd : ifd + 2], order)):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(tiff):
            return None
        tag = int.from_bytes(tiff[entry : entry + 2], order)
        kind = int.from_bytes(tiff[entry + 2 : entry + 4], order)
        if tag == _ORIENTATION_TAG and kind == 3:  # SHORT, value stored inline
            value = int.from_bytes(tiff[entry + 8 : entry + 10], order)
            return value if 2 <= value <= 8 else None
    return None


def _orientation_segment(value: int) -> bytes:
    """A fresh APP1 holding an EXIF block with the Orientation tag alone."""
    tiff = (
        b"MM\x00*"
        + (8).to_bytes(4, "big")  # IFD0 right after the header
        + (1).to_bytes(2, "big")
        + _ORIENTATION_TAG.to_bytes(2, "big")
        + (3).to_bytes(2, "big")
        + (1).to_bytes(4, "big")
        + value.to_bytes(2, "big")
        + b"\x00\x00"
        + (0).to_bytes(4, "big")  # no next IFD
    )
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


class _SegmentStripper(ABC):
    """Buffers what a segment or chunk header needs; `_run` consumes what it can and emits."""

    _truncated = "The image ends too early."

    def __init__(self, state: int) -> None:
        self._buf = bytearray()
        self._state = state

    @abstractmethod
    def _run(self, out: bytearray) -> int:
        """Consume whole segments from the buffer into `out`; return how many bytes."""

    def feed(self, data: bytes) -> bytes:
        if self._state == _DONE:
            return b""
        self._buf += data
        out = bytearray()
        consumed = self._run(out)
        del self._buf[:consumed]
        return bytes(out)

    def finish(self) -> bytes:
        done = self._state == _DONE
        self._buf.clear()
        if not done:
            raise MetadataError(self._truncated)
        return b""


class JpegStripper(_SegmentStripper):
    """Streams a JPEG, keeping only what decoding needs.

    Kept: SOI, SOFn, DHT, DAC, DQT, DRI, DNL, DHP, EXP, every SOS with its entropy-coded data
    (restart markers and 0xFF00 stuffing included), EOI; a JFIF APP0 without its thumbnail; the
    Adobe APP14 (its colour-transform flag decides how CMYK/RGB JPEGs decode); and the EXIF
    Orientation alone, rewritten, so photos taken sideways still display upright.
    Dropped: the rest of APP1 (EXIF with GPS, XMP), APP2 (ICC profiles too: a calibrated profile's
    description and dates can name a person or a machine), APP3-APP15, COM, and anything after EOI
    (Samsung trailers, motion-photo videos, MPF secondary images with their own EXIF).
    Memory: at most one marker segment (< 64 KiB) beyond the incoming piece.
    """

    _truncated = "The JPEG image ends before its end marker."

    def __init__(self) -> None:
        super().__init__(_START)
        self._skip = 0
        self._orientation_seen = False

    def _run(self, out: bytearray) -> int:
        buf = self._buf
        end = len(buf)
        pos = 0
        while pos < end:
            if self._state == _START:
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\xff\xd8":
                    raise MetadataError("The file does not start like a JPEG image.")
                out += b"\xff\xd8"
                pos += 2
                self._state = _MARKER
            elif self._state == _MARKER:
                pos = self._marker(out, pos)
                if pos < 0:  # needs more input; -pos - 1 is where to resume
                    return -pos - 1
            elif self._state == _SEGMENT_SKIP:
                taken = min(self._skip, end - pos)
                pos += taken
                self._skip -= taken
                if self._skip == 0:
                    self._state = _MARKER
            elif self._state == _SCAN:
                pos = self._scan(out, pos)
                if pos < 0:
                    return -pos - 1
            else:  # _DONE: whatever follows EOI is dropped
                return end
        return pos

    def _scan(self, out: bytearray, pos: int) -> int:
        """Pass entropy-coded data through up to the next real marker."""
        buf = self._buf
        end = len(buf)
        while True:
            ff = buf.find(0xFF, pos)
            if ff < 0:
                out += buf[pos:]
                return end
            out += buf[pos:ff]
            if ff + 1 >= end:
                return -ff - 1  # keep the lone 0xFF until we see what follows it
            following = buf[ff + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:  # stuffed byte or RSTn
                out += buf[ff : ff + 2]
                pos = ff + 2
            elif following == 0xFF:  # fill byte before a marker
                pos = ff + 1
            else:
                self._state = _MARKER
                return ff

    def _marker(self, out: bytearray, pos: int) -> int:
        """Handle one marker at `pos`; return the new position, or -(resume + 1) to wait."""
        buf = self._buf
        end = len(buf)
        ff = buf.find(0xFF, pos)
        if ff < 0:
            return end  # stray bytes between segments: decoders skip them, so do we
        code_at = ff + 1
        while code_at < end and buf[code_at] == 0xFF:
            code_at += 1
        if code_at >= end:
            return -(code_at - 1) - 1
        code = buf[code_at]
        if code in _JPEG_STANDALONE or code == _EOI:
            out += bytes((0xFF, code))
            if code == _EOI:
                self._state = _DONE
                return end
            return code_at + 1
        if code == _SOI or not (
            code in _JPEG_KEPT or code in _JPEG_INSPECTED or code in _JPEG_DROPPED or code == _SOS
        ):
            raise MetadataError("The JPEG image has an unexpected or unsupported marker.")
        if code_at + 3 > end:
            return -(code_at - 1) - 1
        length = int.from_bytes(buf[code_at + 1 : code_at + 3], "big")
        if length < 2:
            raise MetadataError("The JPEG image has a malformed segment.")
        if code in _JPEG_DROPPED:
            self._skip = length
            self._state = _SEGMENT_SKIP
            return code_at + 1
        segment_end = code_at + 1 + length
        if segment_end > end:
            return -(code_at - 1) - 1
        if code in _JPEG_INSPECTED:
            out += self._rewrite(code, bytes(buf[code_at + 3 : segment_end]))
        else:
            out += b"\xff"
            out += buf[code_at:segment_end]
            if code == _SOS:
                self._state = _SCAN
        return segment_end

    def _rewrite(self, code: int, payload: bytes) -> bytes:
        if code == _APP0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
            # Identifier, version, units, densities; thumbnail size forced to 0x0, pixels dropped.
            return b"\xff\xe0\x00\x10" + payload[:12] + b"\x00\x00"
        if code == _APP14 and payload.startswith(b"Adobe") and len(payload) >= 12:
            return b"\xff\xee\x00\x0e" + payload[:12]
        if code == _APP1 and not self._orientation_seen:
            orientation = _exif_orientation(payload)
            if orientation is not None:
                self._orientation_seen = True
                return _orientation_segment(orientation)
        return b""


# --- PNG --------------------------------------------------------------------------------------

# Critical chunks and ancillary chunks that only affect rendering. tEXt, zTXt, iTXt, eXIf, tIME,
# iCCP (a profile can carry a person's or a machine's name), sPLT and unknown ancillary chunks
# are dropped.
_PNG_KEPT = frozenset(
    {
        b"IHDR",
        b"PLTE",
        b"IDAT",
        b"IEND",
        b"tRNS",
        b"gAMA",
        b"cHRM",
        b"sRGB",
        b"cICP",
        b"bKGD",
        b"pHYs",
        b"sBIT",
        b"acTL",
        b"fcTL",
        b"fdAT",
    }
)
_PNG_MAX_LENGTH = 2**31 - 1
_SIGNATURE, _HEADER, _DATA, _CRC, _CHUNK_SKIP = range(5, 10)


class PngStripper(_SegmentStripper):
    """Streams a PNG chunk by chunk, keeping an allow-list of chunks and checking their CRCs.

    Unknown critical chunks make the file undecodable anyway and are refused; anything after IEND
    is dropped. Memory: at most a chunk header or CRC beyond the incoming piece; IDAT is streamed.
    """

    _truncated = "The PNG image ends before its IEND chunk."

    def __init__(self) -> None:
        super().__init__(_SIGNATURE)
        self._remaining = 0
        self._crc = 0
        self._chunk_type = b""
        self._first_chunk = True

    def _run(self, out: bytearray) -> int:
        buf = self._buf
        end = len(buf)
        pos = 0
        while pos < end:
            if self._state == _SIGNATURE:
                if end - pos < 8:
                    break
                if buf[pos : pos + 8] != PNG_MAGIC:
                    raise MetadataError("The file does not start like a PNG image.")
                out += PNG_MAGIC
                pos += 8
                self._state = _HEADER
            elif self._state == _HEADER:
                if end - pos < 8:
                    break
                self._header(out, bytes(buf[pos : pos + 8]))
                pos += 8
            elif self._state == _DATA:
                taken = min(self._remaining, end - pos)
                piece = buf[pos : pos + taken]
                out += piece
                self._crc = zlib.crc32(piece, self._crc)
                self._remaining -= taken
                pos += taken
                if self._remaining == 0:
                    self._state = _CRC
            elif self._state == _CRC:
                if end - pos < 4:
                    break
                if int.from_bytes(buf[pos : pos + 4], "big") != self._crc:
                    raise MetadataError("The PNG image has a damaged chunk.")
                out += buf[pos : pos + 4]
                pos += 4
                self._state = _DONE if self._chunk_type == b"IEND" else _HEADER
            elif self._state == _CHUNK_SKIP:
                taken = min(self._remaining, end - pos)
                pos += taken
                self._remaining -= taken
                if self._remaining == 0:
                    self._state = _HEADER
            else:  # _DONE: whatever follows IEND is dropped
                return end
        return pos

    def _header(self, out: bytearray, header: bytes) -> None:
        length = int.from_bytes(header[:4], "big")
        chunk_type = header[4:]
        if length > _PNG_MAX_LENGTH or not chunk_type.isalpha() or not chunk_type.isascii():
            raise MetadataError("The PNG image has a malformed chunk.")
        if self._first_chunk and (chunk_type != b"IHDR" or length != 13):
            raise MetadataError("The PNG image does not start with its header chunk.")
        self._first_chunk = False
        self._chunk_type = chunk_type
        if chunk_type in _PNG_KEPT:
            out += header
            self._crc = zlib.crc32(chunk_type)
            self._remaining = length
            self._state = _DATA if length else _CRC
        elif chunk_type[0] & 0x20 == 0:  # upper-case first letter: critical, cannot be skipped
            raise MetadataError("The PNG image has an unsupported critical chunk.")
        else:
            self._remaining = length + 4  # data and CRC
            self._state = _CHUNK_SKIP


# --- PDF --------------------------------------------------------------------------------------

# Keys dropped from every dictionary: XMP streams (catalog, pages, images, fonts…) and the
# application-private data of PieceInfo (Illustrator, for one, stores the whole source file there).
_PDF_DROPPED_KEYS = ("/Metadata", "/PieceInfo", "/LastModified")
# In markup annotations (comments, highlights) /T is the author's name; in widgets it is a form
# field's name and must stay.
_PDF_ANNOTATION_KEYS = ("/T", "/M", "/CreationDate")


def strip_pdf(data: bytes) -> bytes:
    """A copy of a PDF without its document information, XMP and private application data.

    The document is held whole in memory (bounded by the per-file limit): PDF cross-references
    point anywhere in the file, so it cannot be cleaned as a stream. Only objects reachable from
    the catalog are written, so earlier revisions of an incrementally saved file are dropped too.
    JPEG images inside are cleaned like uploaded JPEGs. Raises MetadataError when the file
    cannot be parsed or is encrypted with a password.
    """
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise MetadataError("The PDF is protected by a password.")
        writer = PdfWriter(clone_from=reader)
        writer.metadata = None  # drops /Info: Author, Creator, Producer, Title, dates…
        # The file identifier is a hash of the original's path, time and size: not needed.
        writer._ID = None
        for page in writer.pages:
            annotations = page["/Annots"] if "/Annots" in page else None
            for annotation in annotations if isinstance(annotations, ArrayObject) else ():
                entry = annotation.get_object()
                if isinstance(entry, DictionaryObject) and entry.get("/Subtype") != "/Widget":
                    for key in _PDF_ANNOTATION_KEYS:
                        entry.pop(key, None)
        _clean_reachable(writer)
        output = io.BytesIO()
        writer.write(output)
    except MetadataError:
        raise
    except Exception as exc:  # pypdf raises many kinds on malformed input
        # Only the type: pypdf's messages may quote the file, and a chained cause could be logged.
        raise MetadataError(f"The PDF cannot be read ({type(exc).__name__}).") from None
    return output.getvalue()


def _clean_reachable(writer: PdfWriter) -> None:
    """Strip metadata keys from every object reachable from the catalog; forget the rest."""
    root = writer.root_object
    if root.indirect_reference is None:
        raise MetadataError("The PDF has no document catalog.")
    reachable = {root.indirect_reference.idnum}
    stack: list[PdfObject] = [root]
    while stack:
        obj = stack.pop()
        children: list[PdfObject]
        if isinstance(obj, DictionaryObject):
            for key in _PDF_DROPPED_KEYS:
                obj.pop(key, None)
            if isinstance(obj, StreamObject):
                _clean_embedded_jpeg(obj)
            children = list(obj.values())
        elif isinstance(obj, ArrayObject):
            children = list(obj)
        else:
            continue
        for child in children:
            if isinstance(child, IndirectObject):
                if child.idnum not in reachable:
                    reachable.add(child.idnum)
                    target = child.get_object()
                    if target is not None:
                        stack.append(target)
            elif isinstance(child, DictionaryObject | ArrayObject):
                stack.append(child)
    # Unreachable objects (the old /Info, XMP streams, PieceInfo data) would still be written.
    for index in range(len(writer._objects)):
        if index + 1 not in reachable:
            writer._objects[index] = None


def _clean_embedded_jpeg(stream: StreamObject) -> None:
    """Run a DCT-encoded image through the JPEG stripper: its EXIF can hold a camera's GPS."""
    filters = stream.get("/Filter")
    if isinstance(filters, ArrayObject) and len(filters) == 1:
        filters = filters[0]
    if filters != NameObject("/DCTDecode"):
        return
    stripper = JpegStripper()
    try:
        cleaned = stripper.feed(stream._data)
    except MetadataError:
        # Not a JPEG we can parse (a viewer may still draw it): kept rather than refuse the PDF.
        return
    try:
        cleaned += stripper.finish()
    except MetadataError:
        pass  # truncated: the cleaned part draws just as the truncated original did
    stream._data = cleaned
