"""Metadata stripping: real files built with Pillow and pypdf, cleaned, reopened, compared."""

import io
import logging
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from app.services.metadata import (
    Kind,
    MetadataError,
    detect_kind,
    strip_pdf,
    stripper_for,
)

PIECE_SIZES = [1, 7, 4096]
NAME = b"Jan Novak"
GPS_DATUM = "GPS-DATUM-PRAHA-50.0875N"


def _picture(mode: str = "RGB", size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A picture with enough detail to exercise the entropy coder."""
    image = Image.new("RGB", size)
    image.putdata(
        [((x * 7) % 256, (y * 11) % 256, (x * y) % 256) for y in range(48) for x in range(64)]
    )
    return image.convert(mode)


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x013B] = NAME.decode()  # Artist
    exif[0x0110] = "Novak Phone X"  # Model
    exif[0x0112] = 6  # Orientation: rotated 90° clockwise
    exif[0x8825] = {1: "N", 2: (50.0, 5.0, 15.0), 3: "E", 4: (14.0, 25.0, 0.0), 18: GPS_DATUM}
    return exif


def _xmp() -> bytes:
    return (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
        b'syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:creator>'
        b"Jan Novak</dc:creator></rdf:Description></rdf:RDF></x:xmpmeta>"
    )


def _jpeg(**options: object) -> bytes:
    out = io.BytesIO()
    _picture(str(options.pop("mode", "RGB"))).save(out, "JPEG", quality=90, **options)
    return out.getvalue()


def _tagged_jpeg() -> bytes:
    return _jpeg(
        exif=_exif().tobytes(),
        comment=b"taken by Jan Novak",
        xmp=_xmp(),
        icc_profile=b"fake profile of Jan Novak's monitor",
    )


def _strip(data: bytes, kind: Kind | None, piece: int | None = None) -> bytes:
    stripper = stripper_for(kind)
    piece = piece or len(data) or 1
    out = b"".join(stripper.feed(data[i : i + piece]) for i in range(0, len(data), piece))
    return out + stripper.finish()


def _pixels(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        return image.tobytes()


def _jpeg_markers(data: bytes) -> list[int]:
    """The marker codes of a JPEG's segments, in order, outside entropy-coded data."""
    markers, pos = [], 2
    while pos < len(data):
        code = data[pos + 1]
        markers.append(code)
        if code == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        pos += 2 + length
        if code == 0xDA:  # skip the scan up to the next non-RST marker
            while not (data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1
    return markers


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return chunks


def _png_chunk(chunk_type: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + body)
    return struct.pack(">I", len(body)) + chunk_type + body + struct.pack(">I", crc)


# --- detect_kind and pass-through ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"%PDF-1.7", "pdf"),
        (b"PK\x03\x04\x14\x00", None),
        (b"GIF89a", None),
        (b"\xff\xd8", None),
        (b"", None),
    ],
)
def test_kind_is_detected_from_magic_bytes(head: bytes, kind: str | None) -> None:
    assert detect_kind(head) == kind


def test_unknown_kind_passes_through_unchanged() -> None:
    data = b"PK\x03\x04 some zip written by Jan Novak" * 100
    for piece in PIECE_SIZES:
        assert _strip(data, None, piece) == data


# --- JPEG -------------------------------------------------------------------------------------


def test_jpeg_loses_exif_gps_xmp_comment_and_icc() -> None:
    original = _tagged_jpeg()
    assert NAME in original
    assert GPS_DATUM.encode() in original

    cleaned = _strip(original, "jpeg")

    assert NAME not in cleaned
    assert b"Novak" not in cleaned
    assert GPS_DATUM.encode() not in cleaned
    assert b"xmpmeta" not in cleaned
    assert b"ICC_PROFILE" not in cleaned
    assert 0xFE not in _jpeg_markers(cleaned)  # no COM segment
    with Image.open(io.BytesIO(cleaned)) as image:
        assert "comment" not in image.info
        assert "xmp" not in image.info
        assert "icc_profile" not in image.info
        assert image.getexif().get_ifd(0x8825) == {}


def test_jpeg_pixels_are_unchanged() -> None:
    original = _tagged_jpeg()
    assert _pixels(_strip(original, "jpeg")) == _pixels(original)


def test_jpeg_keeps_only_the_orientation_of_its_exif() -> None:
    with Image.open(io.BytesIO(_strip(_tagged_jpeg(), "jpeg"))) as image:
        assert dict(image.getexif()) == {0x0112: 6}


def test_jpeg_without_orientation_gets_no_exif() -> None:
    exif = _exif()
    del exif[0x0112]
    cleaned = _strip(_jpeg(exif=exif.tobytes()), "jpeg")
    assert 0xE1 not in _jpeg_markers(cleaned)


@pytest.mark.parametrize("piece", PIECE_SIZES)
def test_jpeg_output_does_not_depend_on_piece_size(piece: int) -> None:
    original = _tagged_jpeg()
    assert _strip(original, "jpeg", piece) == _strip(original, "jpeg")


@pytest.mark.parametrize("piece", [None, *PIECE_SIZES])
def test_progressive_jpeg_keeps_all_its_scans(piece: int | None) -> None:
    original = _jpeg(progressive=True, exif=_exif().tobytes(), comment=b"Jan Novak")
    assert _jpeg_markers(original).count(0xDA) > 1

    cleaned = _strip(original, "jpeg", piece)

    assert _jpeg_markers(cleaned).count(0xDA) == _jpeg_markers(original).count(0xDA)
    assert NAME not in cleaned
    assert _pixels(cleaned) == _pixels(original)


@pytest.mark.parametrize("piece", [None, 1])
def test_jpeg_with_restart_markers_is_unchanged_in_pixels(piece: int | None) -> None:
    original = _jpeg(restart_marker_blocks=1, comment=b"Jan Novak")
    assert b"\xff\xd0" in original
    cleaned = _strip(original, "jpeg", piece)
    assert NAME not in cleaned
    assert _pixels(cleaned) == _pixels(original)


def test_cmyk_jpeg_keeps_its_adobe_segment() -> None:
    original = _jpeg(mode="CMYK", comment=b"Jan Novak")
    cleaned = _strip(original, "jpeg")
    assert 0xEE in _jpeg_markers(cleaned)
    assert _pixels(cleaned) == _pixels(original)


def test_jfif_thumbnail_is_dropped() -> None:
    original = _jpeg()
    thumbnail = b"NovakThumbXY"  # 2x2 RGB
    jfif = b"JFIF\x00\x01\x02\x00\x00\x48\x00\x48\x02\x02" + thumbnail
    app0 = b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif
    with_thumbnail = original[:2] + app0 + original[2:]

    cleaned = _strip(with_thumbnail, "jpeg")

    assert thumbnail not in cleaned
    assert b"\xff\xe0\x00\x10JFIF\x00\x01\x02\x00\x00\x48\x00\x48\x00\x00" in cleaned
    assert _pixels(cleaned) == _pixels(original)


def test_data_after_the_jpeg_end_is_dropped() -> None:
    original = _jpeg()
    trailer = b"\xff\xd8\xff\xe1 motion photo video by Jan Novak \xff\xd9"
    cleaned = _strip(original + trailer, "jpeg", 7)
    assert cleaned.endswith(b"\xff\xd9")
    assert NAME not in cleaned
    assert _pixels(cleaned) == _pixels(original)


@pytest.mark.parametrize("cut", [1, 3, 100, 1000])
def test_truncated_jpeg_is_refused_at_finish(cut: int) -> None:
    original = _tagged_jpeg()
    stripper = stripper_for("jpeg")
    stripper.feed(original[:cut])
    with pytest.raises(MetadataError):
        stripper.finish()


def test_jpeg_cut_before_its_end_marker_is_refused() -> None:
    stripper = stripper_for("jpeg")
    stripper.feed(_jpeg()[:-2])
    with pytest.raises(MetadataError):
        stripper.finish()


def test_jpeg_with_a_bad_segment_length_is_refused() -> None:
    with pytest.raises(MetadataError):
        stripper_for("jpeg").feed(b"\xff\xd8\xff\xdb\x00\x01")


def test_file_that_is_not_a_jpeg_is_refused_by_the_jpeg_stripper() -> None:
    with pytest.raises(MetadataError):
        stripper_for("jpeg").feed(b"GIF89a......")


def test_metadata_error_names_no_content() -> None:
    stripper = stripper_for("jpeg")
    stripper.feed(_tagged_jpeg()[:500])
    with pytest.raises(MetadataError) as error:
        stripper.finish()
    assert "Novak" not in str(error.value)


# --- PNG --------------------------------------------------------------------------------------


def _tagged_png(image: Image.Image | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", NAME.decode())
    info.add_text("Comment", "zipped note by Jan Novak " * 4, zip=True)
    info.add_itxt("Description", "Tajný popis: Jan Novák", lang="cs", tkey="Popis")
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 17, 10, 30, 0))
    info.add(b"prVt", b"private chunk of Jan Novak")
    out = io.BytesIO()
    (image or _picture()).save(
        out, "PNG", pnginfo=info, exif=_exif().tobytes(), icc_profile=b"fake profile"
    )
    return out.getvalue()


def test_png_loses_text_exif_time_icc_and_unknown_chunks() -> None:
    original = _tagged_png()
    assert {b"tEXt", b"zTXt", b"iTXt", b"tIME", b"eXIf", b"iCCP", b"prVt"} <= set(
        _png_chunks(original)
    )

    cleaned = _strip(original, "png")

    assert _png_chunks(cleaned) == [b"IHDR", b"IDAT", b"IEND"]
    assert b"Novak" not in cleaned
    assert GPS_DATUM.encode() not in cleaned
    with Image.open(io.BytesIO(cleaned)) as image:
        assert not image.text  # type: ignore[attr-defined]
        assert not image.getexif()


def test_png_pixels_are_unchanged() -> None:
    original = _tagged_png()
    assert _pixels(_strip(original, "png")) == _pixels(original)


def test_palette_png_keeps_its_palette_and_transparency() -> None:
    image = _picture().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 3
    original = _tagged_png(image)

    cleaned = _strip(original, "png")

    assert {b"PLTE", b"tRNS"} <= set(_png_chunks(cleaned))
    with Image.open(io.BytesIO(cleaned)) as a, Image.open(io.BytesIO(original)) as b:
        assert a.convert("RGBA").tobytes() == b.convert("RGBA").tobytes()


@pytest.mark.parametrize("piece", PIECE_SIZES)
def test_png_output_does_not_depend_on_piece_size(piece: int) -> None:
    original = _tagged_png()
    assert _strip(original, "png", piece) == _strip(original, "png")


def test_animated_png_keeps_its_frames() -> None:
    frames = [_picture(), _picture().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:], duration=100)
    original = out.getvalue()

    cleaned = _strip(original, "png", 7)

    assert {b"acTL", b"fcTL", b"fdAT"} <= set(_png_chunks(cleaned))
    with Image.open(io.BytesIO(cleaned)) as image:
        assert getattr(image, "n_frames", 1) == 2
        for index, frame in enumerate(frames):
            image.seek(index)
            assert image.convert("RGB").tobytes() == frame.tobytes()


def test_data_after_the_png_end_is_dropped() -> None:
    original = _tagged_png()
    cleaned = _strip(original + b"appended by Jan Novak", "png", 4096)
    assert cleaned.endswith(_png_chunk(b"IEND", b""))
    assert NAME not in cleaned


@pytest.mark.parametrize("cut", [5, 8, 20, 40, 12])
def test_truncated_png_is_refused_at_finish(cut: int) -> None:
    original = _tagged_png()
    stripper = stripper_for("png")
    stripper.feed(original[: len(original) - cut])
    with pytest.raises(MetadataError):
        stripper.finish()


def test_png_with_a_damaged_chunk_is_refused() -> None:
    original = bytearray(_strip(_tagged_png(), "png"))
    idat = original.index(b"IDAT")
    original[idat + 10] ^= 0xFF
    with pytest.raises(MetadataError):
        _strip(bytes(original), "png")


def test_png_with_an_unknown_critical_chunk_is_refused() -> None:
    original = _strip(_tagged_png(), "png")
    end = original.index(b"IDAT") - 4
    with pytest.raises(MetadataError):
        _strip(original[:end] + _png_chunk(b"XXXX", b"Jan Novak") + original[end:], "png")


def test_png_with_an_oversized_chunk_length_is_refused() -> None:
    original = _strip(_tagged_png(), "png")
    end = original.index(b"IDAT") - 4
    with pytest.raises(MetadataError):
        stripper_for("png").feed(original[:end] + b"\x80\x00\x00\x00tEXt")


def test_png_must_start_with_its_header_chunk() -> None:
    signature = b"\x89PNG\r\n\x1a\n"
    with pytest.raises(MetadataError):
        stripper_for("png").feed(signature + _png_chunk(b"tEXt", b"Author\x00Jan Novak"))


# --- PDF --------------------------------------------------------------------------------------

PDF_TEXT = "Evidence of the fraud"


def _xmp_stream(text: bytes) -> DecodedStreamObject:
    stream = DecodedStreamObject()
    stream.set_data(text)
    stream[NameObject("/Type")] = NameObject("/Metadata")
    stream[NameObject("/Subtype")] = NameObject("/XML")
    return stream


def _image_stream(jpeg: bytes) -> DecodedStreamObject:
    stream = DecodedStreamObject()
    stream.set_data(jpeg)
    stream.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Image"),
            NameObject("/Width"): NumberObject(64),
            NameObject("/Height"): NumberObject(48),
            NameObject("/ColorSpace"): NameObject("/DeviceRGB"),
            NameObject("/BitsPerComponent"): NumberObject(8),
            NameObject("/Filter"): NameObject("/DCTDecode"),
        }
    )
    return stream


def _tagged_pdf(*, password: str | None = None) -> bytes:
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {
            NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)}),
            NameObject("/XObject"): DictionaryObject(
                {NameObject("/Im1"): writer._add_object(_image_stream(_tagged_jpeg()))}
            ),
        }
    )
    content = DecodedStreamObject()
    content.set_data(
        f"BT /F1 24 Tf 72 720 Td ({PDF_TEXT}) Tj ET q 64 0 0 48 72 500 cm /Im1 Do Q".encode()
    )
    page[NameObject("/Contents")] = writer._add_object(content)
    page[NameObject("/Metadata")] = writer._add_object(_xmp_stream(b"<page>Jan Novak</page>"))
    private = DecodedStreamObject()
    private.set_data(b"Illustrator private data of Jan Novak")
    page[NameObject("/PieceInfo")] = DictionaryObject(
        {
            NameObject("/Illustrator"): DictionaryObject(
                {NameObject("/Private"): writer._add_object(private)}
            )
        }
    )
    note = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Text"),
            NameObject("/Rect"): ArrayObject([FloatObject(v) for v in (10, 10, 30, 30)]),
            NameObject("/Contents"): TextStringObject("Look here"),
            NameObject("/T"): TextStringObject("Jan Novak (comment author)"),
        }
    )
    page[NameObject("/Annots")] = ArrayObject([writer._add_object(note)])
    writer._root_object[NameObject("/Metadata")] = writer._add_object(_xmp_stream(_xmp()))
    writer.add_metadata(
        {
            "/Author": NAME.decode(),
            "/Title": "Secret Title",
            "/Subject": "Secret Subject",
            "/Keywords": "secret keywords",
            "/Creator": "Novak Writer 1.0",
            "/Producer": "Novak Producer 2.0",
            "/CreationDate": "D:20240517103000+02'00'",
        }
    )
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_pdf_loses_info_xmp_piece_info_and_comment_authors() -> None:
    original = _tagged_pdf()
    for secret in (NAME, b"Secret Title", b"Novak Producer", b"xmpmeta", b"Illustrator private"):
        assert secret in original

    cleaned = strip_pdf(original)

    for secret in (b"Novak", b"Secret Title", b"Secret Subject", b"secret keywords", b"xmpmeta"):
        assert secret not in cleaned
    for key in (b"/Producer", b"/Creator", b"/CreationDate", b"/Metadata", b"/PieceInfo"):
        assert key not in cleaned
    reader = PdfReader(io.BytesIO(cleaned))
    assert not reader.metadata
    assert reader.xmp_metadata is None
    assert "/Metadata" not in reader.pages[0]


def test_pdf_keeps_its_text_and_comments() -> None:
    reader = PdfReader(io.BytesIO(strip_pdf(_tagged_pdf())))
    assert len(reader.pages) == 1
    assert PDF_TEXT in reader.pages[0].extract_text()
    annotation = reader.pages[0]["/Annots"][0].get_object()  # type: ignore[index]
    assert annotation["/Contents"] == "Look here"


def test_pdf_images_lose_their_exif_but_not_their_pixels() -> None:
    original = _tagged_pdf()
    cleaned = strip_pdf(original)

    assert GPS_DATUM.encode() not in cleaned
    before = PdfReader(io.BytesIO(original)).pages[0].images
    after = PdfReader(io.BytesIO(cleaned)).pages[0].images
    assert len(after) == 1
    assert before[0].image is not None
    assert after[0].image is not None
    assert "comment" not in after[0].image.info
    assert after[0].image.tobytes() == before[0].image.tobytes()


def test_pdf_with_an_empty_user_password_is_cleaned() -> None:
    cleaned = strip_pdf(_tagged_pdf(password=""))
    assert b"Novak" not in cleaned
    assert PDF_TEXT in PdfReader(io.BytesIO(cleaned)).pages[0].extract_text()


def test_pdf_protected_by_a_password_is_refused() -> None:
    with pytest.raises(MetadataError):
        strip_pdf(_tagged_pdf(password="secret"))


@pytest.mark.parametrize(
    "data", [b"%PDF-1.7\nthis is no PDF by Jan Novak\n", b"%PDF-", b"", b"\x00" * 100]
)
def test_unreadable_pdf_is_refused_without_naming_its_content(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(MetadataError) as error:
        strip_pdf(data)
    assert "Novak" not in str(error.value)
    assert error.value.__cause__ is None
    assert not [record for record in caplog.records if record.name.startswith("pypdf")]
