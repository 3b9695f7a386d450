"""OOXML package surgery: change only the parts costloop must, copy the rest byte-for-byte.

An .xlsx/.xlsm file is a zip of XML "parts" linked by relationship (``.rels``)
parts and typed by ``[Content_Types].xml``. Loading it into openpyxl and saving
again rebuilds every part from openpyxl's model and silently drops what the model
does not know (shapes, form buttons, header images, pivot details, ...). So
costloop never round-trips a workbook through a model: `Package` keeps every
zip entry as raw bytes, and the classes here edit only the few parts that must
change when an engine-owned sheet is written:

- the worksheet part itself (rendered by `costloop.engine.xlsx.file_workbook`);
- ``xl/workbook.xml`` (a ``<sheet>`` entry and the ownership marker for a new
  sheet, the hidden autofilter name), its ``.rels`` and ``[Content_Types].xml``;
- ``xl/styles.xml``, only appended to (bold font, number formats, cell formats),
  reusing entries already there so reruns do not grow it;
- ``docProps/app.xml`` sheet titles, kept consistent when a sheet is added;
- ``xl/calcChain.xml``, only if it lists cells of a replaced sheet.

Edited parts are parsed and reserialised with lxml, which keeps namespace
declarations, ``mc:Ignorable`` and unknown extension elements as they were.
A part that ends up unchanged keeps its original bytes.
"""

from __future__ import annotations

import concurrent.futures
import copy
import io
import posixpath
import re
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass

from lxml import etree

from costloop.errors import WorkbookError

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
NS_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
NS_EXT_PROPS = "http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"
NS_VT = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"

REL_OFFICE_DOCUMENT = NS_R + "/officeDocument"
REL_WORKSHEET = NS_R + "/worksheet"
REL_STYLES = NS_R + "/styles"
REL_CALC_CHAIN = NS_R + "/calcChain"
CT_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
CT_STYLES = "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"

OWNED_NAME = "costloop_owned"
"""Hidden sheet-scoped defined name that marks a sheet as made by costloop."""
OWNED_VALUE = '"v1"'
FILTER_NAME = "_xlnm._FilterDatabase"

# Number formats Excel knows by id; anything else becomes a custom <numFmt>.
BUILTIN_NUMBER_FORMATS = {
    "General": 0,
    "0": 1,
    "0.00": 2,
    "#,##0": 3,
    "#,##0.00": 4,
    "0%": 9,
    "0.00%": 10,
    "0.00E+00": 11,
    "@": 49,
}

# Child order of CT_Workbook and CT_Stylesheet: a created element must go in
# its schema position or Excel reports the file as corrupt.
WORKBOOK_ORDER = [
    "fileVersion",
    "fileSharing",
    "workbookPr",
    "workbookProtection",
    "bookViews",
    "sheets",
    "functionGroups",
    "externalReferences",
    "definedNames",
    "calcPr",
    "oleSize",
    "customWorkbookViews",
    "pivotCaches",
    "smartTagPr",
    "smartTagTypes",
    "webPublishing",
    "fileRecoveryPr",
    "webPublishObjects",
    "extLst",
]
STYLESHEET_ORDER = [
    "numFmts",
    "fonts",
    "fills",
    "borders",
    "cellStyleXfs",
    "cellXfs",
    "cellStyles",
    "dxfs",
    "tableStyles",
    "colors",
    "extLst",
]

MINIMAL_STYLES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b'<fonts count="1"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    b'<fills count="2"><fill><patternFill patternType="none"/></fill>'
    b'<fill><patternFill patternType="gray125"/></fill></fills>'
    b'<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    b'<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    b'<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
    b'<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    b"</styleSheet>"
)


class PackageError(WorkbookError):
    """The zip is not a workbook costloop can edit (no workbook part, broken XML)."""

    def explain(self) -> str:
        return (
            f"the workbook file is damaged ({self}); open it in Excel, save it, and run "
            f"again — nothing was changed"
        )


XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def parse_xml(data: bytes) -> etree._Element:
    # huge_tree: a large worksheet or shared-strings part is legitimate, not an attack.
    parser = etree.XMLParser(remove_blank_text=False, resolve_entities=False, huge_tree=True)
    return etree.fromstring(data, parser)


def serialize_xml(root: etree._Element) -> bytes:
    # Written by hand: lxml's declaration uses single quotes, Excel's uses double.
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def same_element(a: etree._Element, b: etree._Element) -> bool:
    """Equal tag, attributes, text and children; namespace declarations in scope aside."""
    return (
        a.tag == b.tag
        and dict(a.attrib) == dict(b.attrib)
        and (a.text or "").strip() == (b.text or "").strip()
        and len(a) == len(b)
        and all(same_element(x, y) for x, y in zip(a, b, strict=True))
    )


def rels_part_of(part: str) -> str:
    """``xl/workbook.xml`` -> ``xl/_rels/workbook.xml.rels``; the root ('') -> ``_rels/.rels``."""
    folder, name = posixpath.split(part)
    return posixpath.join(folder, "_rels", name + ".rels")


def resolve_target(source_part: str, target: str) -> str:
    """Zip entry name of a relationship target, relative to the part that holds the rels."""
    if target.startswith("/"):
        return posixpath.normpath(target[1:])
    base = posixpath.dirname(source_part)
    return posixpath.normpath(posixpath.join(base, target))


FAST_DEFLATE_LEVEL = 1
"""zlib level for the worksheets costloop renders: 3-4x faster than the default level 6
on a 100 MB Journal, for a file about 15% bigger (the Usage sheet, copied as it was, is
most of the file anyway)."""


@dataclass(frozen=True)
class DeflatedPart:
    """A part's bytes already deflated (raw deflate, as a zip entry holds them)."""

    data: bytes
    crc: int
    size: int

    def inflate(self) -> bytes:
        return zlib.decompress(self.data, -zlib.MAX_WBITS)


Chunk = bytes | Callable[[], bytes]
"""A piece of a part: its bytes (or any bytes-like object, such as an Arrow buffer), or a
function making them that lets go of the GIL (Arrow laying out a block of rows):
`deflate_chunks` calls it on its worker thread."""


def chunk_bytes(chunk: Chunk) -> bytes:
    return chunk() if callable(chunk) else chunk


def deflate_chunks(chunks: Iterable[Chunk], level: int = FAST_DEFLATE_LEVEL) -> DeflatedPart:
    """Deflate a part handed over in pieces, on a worker thread while the next is made.

    zlib lets go of the GIL, so on two cores a worksheet's rows are compressed in the
    time it takes to render them. A few pieces at most wait, so memory stays small.
    """
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    out: list[bytes] = []
    crc = size = 0

    def take(chunk: Chunk) -> None:
        nonlocal crc, size
        view = memoryview(chunk_bytes(chunk))
        crc = zlib.crc32(view, crc)
        size += view.nbytes
        out.append(compressor.compress(view))

    # One worker takes the pieces in order: the compressed stream and CRC stay in sequence.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as worker:
        waiting: deque[concurrent.futures.Future] = deque()
        try:
            for chunk in chunks:
                waiting.append(worker.submit(take, chunk))
                while len(waiting) > 2:
                    waiting.popleft().result()
        finally:
            while waiting:
                waiting.popleft().result()
    out.append(compressor.flush())
    return DeflatedPart(b"".join(out), crc, size)


class _ZipParts(MutableMapping):
    """Part name -> bytes of a zip read from memory; an entry is inflated when first used.

    Most of a big workbook (its data sheets) is never looked at when costloop
    writes its own sheets: those entries stay compressed, and `Package.write`
    copies them across as they are.
    """

    def __init__(self, data: bytes, archive: zipfile.ZipFile):
        self._source = data
        self._archive = archive
        self._entries = {info.filename: info for info in archive.infolist()}
        self._inflated: dict[str, bytes] = {}
        self._order: dict[str, None] = dict.fromkeys(self._entries)
        self._changed: set[str] = set()
        self._deflated: dict[str, DeflatedPart] = {}

    def __getitem__(self, name: str) -> bytes:
        if name not in self._order:
            raise KeyError(name)
        if name in self._deflated:
            return self._deflated[name].inflate()  # rare: a written part read back
        if name not in self._inflated:
            self._inflated[name] = self._archive.read(self._entries[name])
        return self._inflated[name]

    def __setitem__(self, name: str, data: bytes) -> None:
        self._inflated[name] = data
        self._deflated.pop(name, None)
        self._order[name] = None
        self._changed.add(name)

    def set_deflated(self, name: str, part: DeflatedPart) -> None:
        self._inflated.pop(name, None)
        self._deflated[name] = part
        self._order[name] = None
        self._changed.add(name)

    def deflated(self, name: str) -> DeflatedPart | None:
        return self._deflated.get(name)

    def __delitem__(self, name: str) -> None:
        del self._order[name]
        self._inflated.pop(name, None)
        self._deflated.pop(name, None)
        self._entries.pop(name, None)
        self._changed.discard(name)

    def __iter__(self):
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._order

    def release(self, name: str) -> None:
        """Forget an entry's inflated bytes (if unchanged): read again from the zip when used."""
        if name not in self._changed:
            self._inflated.pop(name, None)

    def untouched(self, name: str) -> bool:
        """Still the entry as read (never set), so its compressed bytes can be copied."""
        info = self._entries.get(name)
        return (
            info is not None
            and name not in self._changed
            and info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
            and not info.flag_bits & 0x1  # not encrypted
            and info.file_size < zipfile.ZIP64_LIMIT
            and info.compress_size < zipfile.ZIP64_LIMIT
        )

    def entry(self, name: str) -> zipfile.ZipInfo:
        return self._entries[name]

    def size(self, name: str) -> int:
        """The entry's size inflated, without inflating it."""
        if name in self._deflated:
            return self._deflated[name].size
        if name in self._inflated or name not in self._entries:
            return len(self[name])
        return self._entries[name].file_size

    def open(self, name: str):
        """A binary stream of the entry's bytes, inflated as it is read (never held whole)."""
        if name in self._deflated or name in self._inflated or name not in self._entries:
            return io.BytesIO(self[name])
        return self._archive.open(self._entries[name])

    def compressed(self, name: str) -> memoryview:
        """The entry's data as stored in the zip (after its local header)."""
        info = self._entries[name]
        start = info.header_offset
        header = self._source[start : start + 30]
        if header[:4] != b"PK\x03\x04":
            raise PackageError(f"{name}: the zip entry's header is damaged")
        name_length = int.from_bytes(header[26:28], "little")
        extra_length = int.from_bytes(header[28:30], "little")
        begin = start + 30 + name_length + extra_length
        return memoryview(self._source)[begin : begin + info.compress_size]


def _copy_entry(archive: zipfile.ZipFile, old: zipfile.ZipInfo, data: memoryview) -> None:
    """Append an entry's compressed bytes to a zip being written, with its metadata."""
    info = zipfile.ZipInfo(old.filename, date_time=old.date_time)
    info.compress_type = old.compress_type
    info.external_attr = old.external_attr
    info.create_system = old.create_system
    info.comment = old.comment
    info.CRC = old.CRC
    info.file_size = old.file_size
    info.compress_size = old.compress_size
    info.flag_bits = old.flag_bits & 0x6  # the deflate level bits; sizes are in the header
    _append_compressed(archive, info, data, zip64=False)


def _append_compressed(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, data, zip64: bool | None
) -> None:
    """What ZipFile.writestr does around its compressor, with the data already compressed."""
    archive.fp.seek(archive.start_dir)
    info.header_offset = archive.fp.tell()
    archive._writecheck(info)
    archive._didModify = True
    archive.fp.write(info.FileHeader(zip64))
    archive.fp.write(data)
    archive.filelist.append(info)
    archive.NameToInfo[info.filename] = info
    archive.start_dir = archive.fp.tell()


class Package:
    """Every zip entry of a workbook as raw bytes, in the original order.

    Untouched entries are written back with their original bytes and zip
    metadata (name, date, compression), so they stay byte-identical.
    """

    def __init__(self, infos: list[zipfile.ZipInfo], parts: dict[str, bytes]):
        self._infos = {info.filename: info for info in infos}
        self._order = [info.filename for info in infos]
        self.parts = parts

    @classmethod
    def read(cls, data: bytes) -> Package:
        archive = zipfile.ZipFile(io.BytesIO(data))
        # Directory entries are kept too: nothing in the zip's listing goes missing.
        infos = archive.infolist()
        return cls(infos, _ZipParts(data, archive))

    def find(self, name: str) -> str | None:
        """The stored entry name for a part name (OPC part names are case-insensitive)."""
        if name in self.parts:
            return name
        lowered = name.lower()
        return next((n for n in self.parts if n.lower() == lowered), None)

    def get(self, name: str) -> bytes | None:
        found = self.find(name)
        return None if found is None else self.parts[found]

    def open(self, name: str):
        """A binary stream of a part (a big worksheet is inflated as it is read), or None."""
        found = self.find(name)
        if found is None:
            return None
        if isinstance(self.parts, _ZipParts):
            return self.parts.open(found)
        return io.BytesIO(self.parts[found])

    def size(self, name: str) -> int:
        """A part's size in bytes once inflated (0 when there is no such part)."""
        found = self.find(name)
        if found is None:
            return 0
        if isinstance(self.parts, _ZipParts):
            return self.parts.size(found)
        return len(self.parts[found])

    def crc(self, name: str) -> int | None:
        """The CRC-32 the zip stores for an unchanged part (None for a part set since)."""
        found = self.find(name)
        if found is None or not isinstance(self.parts, _ZipParts):
            return None
        if not self.parts.untouched(found):
            return None
        return self.parts.entry(found).CRC

    def release(self, name: str) -> None:
        """Let go of a big part's bytes once read (a 250 MB Usage sheet need not stay)."""
        found = self.find(name)
        if found is not None and isinstance(self.parts, _ZipParts):
            self.parts.release(found)

    def set(self, name: str, data: bytes) -> None:
        found = self.find(name)
        if found is None:
            self._order.append(name)
            found = name
        self.parts[found] = data

    def set_deflated(self, name: str, part: DeflatedPart) -> None:
        """`set`, with the bytes already deflated (`deflate_chunks`): written as they are."""
        found = self.find(name)
        if found is None:
            self._order.append(name)
            found = name
        if isinstance(self.parts, _ZipParts):
            self.parts.set_deflated(found, part)
        else:
            self.parts[found] = part.inflate()

    def head(self, name: str, size: int) -> bytes:
        """The part's first ``size`` bytes or so, inflating no more of it than that."""
        found = self.find(name)
        if found is None:
            return b""
        parts = self.parts
        if isinstance(parts, _ZipParts) and parts.untouched(found):
            info = parts.entry(found)
            if info.compress_type == zipfile.ZIP_DEFLATED:
                inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                return inflater.decompress(parts.compressed(found), size)
        return parts[found][:size]

    def delete(self, name: str) -> None:
        found = self.find(name)
        if found is not None:
            del self.parts[found]
            self._order.remove(found)
            self._infos.pop(found, None)

    def write(self, fileobj) -> None:
        source = self.parts if isinstance(self.parts, _ZipParts) else None
        with zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in self._order:
                if source is not None and source.untouched(name):
                    # Copied compressed, as it was: no inflating and deflating a
                    # 250 MB Usage sheet to write the handful of parts that changed.
                    _copy_entry(archive, source.entry(name), source.compressed(name))
                    continue
                info = self._fresh_info(name)
                deflated = source.deflated(name) if source is not None else None
                if deflated is not None:
                    info.compress_type = zipfile.ZIP_DEFLATED
                    info.CRC, info.file_size = deflated.crc, deflated.size
                    info.compress_size = len(deflated.data)
                    _append_compressed(archive, info, deflated.data, zip64=None)
                    continue
                archive.writestr(info, self.parts[name])

    def _fresh_info(self, name: str) -> zipfile.ZipInfo:
        """The zip metadata to write a changed part with: the old entry's, sizes aside."""
        info = self._infos.get(name)
        if info is None:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            return info
        # A fresh copy: zipfile fills size/CRC fields in on write.
        old, info = info, zipfile.ZipInfo(info.filename, date_time=info.date_time)
        info.compress_type = old.compress_type
        info.external_attr = old.external_attr
        info.create_system = old.create_system
        info.comment = old.comment
        return info

    # -- relationships ------------------------------------------------------------------

    def rels(self, source_part: str) -> list[tuple[str, str, str, str]]:
        """(Id, Type, target part or external URL, TargetMode) of a part's relationships."""
        data = self.get(rels_part_of(source_part))
        if data is None:
            return []
        out = []
        for rel in parse_xml(data):
            if rel.tag != f"{{{NS_PKG_REL}}}Relationship":
                continue
            mode = rel.get("TargetMode", "Internal")
            target = rel.get("Target", "")
            if mode != "External":
                target = resolve_target(source_part, target)
            out.append((rel.get("Id", ""), rel.get("Type", ""), target, mode))
        return out

    def reachable(self) -> set[str]:
        """Stored names of every part reachable by internal relationships from the root."""
        seen: set[str] = set()
        queue = deque([""])
        while queue:
            source = queue.popleft()
            for _, _, target, mode in self.rels(source):
                found = self.find(target) if mode != "External" else None
                if found is not None and found not in seen:
                    seen.add(found)
                    queue.append(found)
        return seen

    def main_part(self) -> str:
        for _, rel_type, target, _ in self.rels(""):
            if rel_type.endswith("/officeDocument") and self.find(target):
                return self.find(target)
        raise PackageError("the zip has no workbook part (not an Excel workbook)")


class Relationships:
    """An editable ``.rels`` part."""

    def __init__(self, package: Package, source_part: str):
        self.package = package
        self.source_part = source_part
        self.name = rels_part_of(source_part)
        data = package.get(self.name)
        self.root = (
            parse_xml(data)
            if data
            else etree.Element(f"{{{NS_PKG_REL}}}Relationships", nsmap={None: NS_PKG_REL})
        )
        self.dirty = False

    def add(self, rel_type: str, target_part: str) -> str:
        used = {rel.get("Id") for rel in self.root}
        number = 1 + max(
            (int(m.group(1)) for i in used if i and (m := re.fullmatch(r"rId(\d+)", i))), default=0
        )
        rel_id = f"rId{number}"
        base = posixpath.dirname(self.source_part)
        rel = etree.SubElement(self.root, f"{{{NS_PKG_REL}}}Relationship")
        rel.set("Id", rel_id)
        rel.set("Type", rel_type)
        rel.set("Target", posixpath.relpath(target_part, base or "."))
        self.dirty = True
        return rel_id

    def remove_type(self, suffix: str) -> None:
        """Drop relationships whose type ends so (transitional and strict spell the start apart)."""
        for rel in list(self.root):
            if rel.get("Type", "").endswith(suffix):
                self.root.remove(rel)
                self.dirty = True

    def save(self) -> None:
        if self.dirty:
            self.package.set(self.name, serialize_xml(self.root))


class ContentTypes:
    """``[Content_Types].xml``: Overrides for the parts costloop adds or removes."""

    NAME = "[Content_Types].xml"

    def __init__(self, package: Package):
        self.package = package
        self.root = parse_xml(package.get(self.NAME) or b"")
        self.dirty = False

    def override(self, part: str, content_type: str) -> None:
        tag = f"{{{NS_CT}}}Override"
        for node in self.root.iter(tag):
            if node.get("PartName", "").lower() == "/" + part.lower():
                if node.get("ContentType") != content_type:
                    node.set("ContentType", content_type)
                    self.dirty = True
                return
        node = etree.SubElement(self.root, tag)
        node.set("PartName", "/" + part)
        node.set("ContentType", content_type)
        self.dirty = True

    def forget(self, parts: Iterable[str]) -> None:
        names = {"/" + p.lower() for p in parts}
        for node in list(self.root.iter(f"{{{NS_CT}}}Override")):
            if node.get("PartName", "").lower() in names:
                self.root.remove(node)
                self.dirty = True

    def save(self) -> None:
        if self.dirty:
            self.package.set(self.NAME, serialize_xml(self.root))


def _insert_in_order(parent: etree._Element, child: etree._Element, order: list[str]) -> None:
    """Insert ``child`` after the last sibling that the schema puts before it."""
    ns = etree.QName(parent).namespace
    before = set(order[: order.index(etree.QName(child).localname)])

    def ours(node: etree._Element) -> bool:
        return isinstance(node.tag, str) and etree.QName(node).namespace == ns

    position = 0
    for index, node in enumerate(parent):
        if ours(node) and etree.QName(node).localname in before:
            position = index + 1
    # Foreign elements right after a predecessor (Excel puts mc:AlternateContent
    # with x15ac:absPath after workbookPr) stay attached to it.
    while position < len(parent) and not ours(parent[position]):
        position += 1
    parent.insert(position, child)


class SheetEntry:
    """One ``<sheet>`` of the workbook: its name, part and position."""

    def __init__(self, index: int, element: etree._Element, part: str | None, rel_type: str):
        self.index = index
        self.element = element
        self.part = part
        self.rel_type = rel_type

    @property
    def name(self) -> str:
        return self.element.get("name", "")

    @property
    def sheet_id(self) -> str:
        return self.element.get("sheetId", "")

    @property
    def is_worksheet(self) -> bool:
        return self.rel_type.endswith("/worksheet")


class WorkbookPart:
    """``xl/workbook.xml`` with its sheets, defined names and relationships."""

    def __init__(self, package: Package):
        self.package = package
        self.part = package.main_part()
        self.root = parse_xml(package.parts[self.part])
        self.ns = etree.QName(self.root).namespace or NS_MAIN
        self.rels = Relationships(package, self.part)
        self.dirty = False
        targets = {rid: (rtype, target) for rid, rtype, target, _ in package.rels(self.part)}
        sheets_el = self._child("sheets")
        self.sheets: list[SheetEntry] = []
        for index, element in enumerate(sheets_el if sheets_el is not None else []):
            rel_type, target = targets.get(element.get(f"{{{NS_R}}}id", ""), ("", None))
            part = package.find(target) if target else None
            self.sheets.append(SheetEntry(index, element, part, rel_type))

    def _child(self, local: str) -> etree._Element | None:
        return self.root.find(f"{{{self.ns}}}{local}")

    @property
    def structure_locked(self) -> bool:
        """Review > Protect Workbook (structure): no sheet may be added or removed."""
        protection = self._child("workbookProtection")
        return protection is not None and protection.get("lockStructure") in ("1", "true")

    @property
    def date1904(self) -> bool:
        pr = self._child("workbookPr")
        return pr is not None and pr.get("date1904", "0").lower() in ("1", "true")

    def sheet(self, name: str) -> SheetEntry | None:
        """The sheet of that name; Excel sheet names are unique case-insensitively."""
        key = name.casefold()
        return next((s for s in self.sheets if s.name.casefold() == key), None)

    def defined_names(self) -> list[etree._Element]:
        names = self._child("definedNames")
        return [] if names is None else list(names.iter(f"{{{self.ns}}}definedName"))

    def owned(self) -> set[str]:
        owned = set()
        for node in self.defined_names():
            if node.get("name", "").lower() == OWNED_NAME and node.get("localSheetId"):
                index = int(node.get("localSheetId"))
                if 0 <= index < len(self.sheets):
                    owned.add(self.sheets[index].name)
        return owned

    def add_sheet(self, name: str, part: str, owned: bool = True) -> SheetEntry:
        """Append a worksheet after the last sheet, marked as costloop's unless ``owned`` is off."""
        sheets_el = self._child("sheets")
        sheet_id = 1 + max(
            (int(s.sheet_id) for s in self.sheets if s.sheet_id.isdigit()), default=0
        )
        rel_id = self.rels.add(REL_WORKSHEET, part)
        # Some writers declare the r: prefix on each <sheet>, not the root; declare
        # it here then, or lxml would invent an "ns0" prefix.
        nsmap = None if NS_R in self.root.nsmap.values() else {"r": NS_R}
        element = etree.SubElement(sheets_el, f"{{{self.ns}}}sheet", nsmap=nsmap)
        element.set("name", name)
        element.set("sheetId", str(sheet_id))
        element.set(f"{{{NS_R}}}id", rel_id)
        entry = SheetEntry(len(self.sheets), element, part, REL_WORKSHEET)
        self.sheets.append(entry)
        if owned:
            self._set_name(OWNED_NAME, entry.index, OWNED_VALUE)
        self.dirty = True
        return entry

    def set_filter_range(self, entry: SheetEntry, ref: str) -> None:
        """Point the sheet's hidden ``_FilterDatabase`` name at its new autofilter range."""
        quoted = "'" + entry.name.replace("'", "''") + "'"
        self._set_name(FILTER_NAME, entry.index, f"{quoted}!{ref}")

    def _set_name(self, name: str, sheet_index: int, value: str) -> None:
        names = self._child("definedNames")
        if names is None:
            names = etree.Element(f"{{{self.ns}}}definedNames")
            _insert_in_order(self.root, names, WORKBOOK_ORDER)
        for node in names.iter(f"{{{self.ns}}}definedName"):
            if node.get("name", "").lower() == name.lower() and node.get("localSheetId") == str(
                sheet_index
            ):
                if node.text != value:
                    node.text = value
                    self.dirty = True
                return
        node = etree.SubElement(names, f"{{{self.ns}}}definedName")
        node.set("name", name)
        node.set("localSheetId", str(sheet_index))
        node.set("hidden", "1")
        node.text = value
        self.dirty = True

    def save(self) -> None:
        if self.dirty:
            self.package.set(self.part, serialize_xml(self.root))
        self.rels.save()


class Styles:
    """``xl/styles.xml``, appended to only: existing indices never move.

    `cell_format` reuses an equal font, number format or cell format already in
    the file (such as one a previous costloop run appended), so running twice
    leaves styles.xml exactly as the first run wrote it.
    """

    def __init__(self, package: Package, workbook: WorkbookPart, types: ContentTypes):
        self.package = package
        self.part = next(
            (t for _, rtype, t, _ in package.rels(workbook.part) if rtype.endswith("/styles")), None
        )
        if self.part is None or package.find(self.part) is None:
            self.part = posixpath.join(posixpath.dirname(workbook.part), "styles.xml")
            package.set(self.part, MINIMAL_STYLES)
            workbook.rels.add(REL_STYLES, self.part)
            types.override(self.part, CT_STYLES)
        self.part = package.find(self.part)
        self.root = parse_xml(package.parts[self.part])
        self.ns = etree.QName(self.root).namespace or NS_MAIN
        self.dirty = False
        self._cache: dict[tuple[str | None, bool], int] = {}

    def _section(self, local: str) -> etree._Element:
        node = self.root.find(f"{{{self.ns}}}{local}")
        if node is None:
            node = etree.Element(f"{{{self.ns}}}{local}")
            node.set("count", "0")
            _insert_in_order(self.root, node, STYLESHEET_ORDER)
        return node

    def _append(self, section: etree._Element, child: etree._Element) -> int:
        section.append(child)
        count = len(section.findall(etree.QName(child).text))
        section.set("count", str(count))
        self.dirty = True
        return count - 1

    def _number_format_id(self, code: str) -> int:
        if code in BUILTIN_NUMBER_FORMATS:
            return BUILTIN_NUMBER_FORMATS[code]
        section = self._section("numFmts")
        known = section.findall(f"{{{self.ns}}}numFmt")
        for node in known:
            if node.get("formatCode") == code:
                return int(node.get("numFmtId"))
        new_id = max([163, *(int(n.get("numFmtId", "0")) for n in known)]) + 1
        node = etree.Element(f"{{{self.ns}}}numFmt")
        node.set("numFmtId", str(new_id))
        node.set("formatCode", code)
        self._append(section, node)
        return new_id

    def _bold_font_id(self) -> int:
        section = self._section("fonts")
        fonts = section.findall(f"{{{self.ns}}}font")
        if fonts:
            # The default font made bold, so headers match the workbook's theme font.
            bold = copy.deepcopy(fonts[0])
            for b in bold.findall(f"{{{self.ns}}}b"):
                bold.remove(b)
        else:
            bold = etree.Element(f"{{{self.ns}}}font")
        bold.insert(0, etree.Element(f"{{{self.ns}}}b"))
        for index, font in enumerate(fonts):
            if same_element(font, bold):
                return index
        return self._append(section, bold)

    def cell_format(self, number_format: str | None, bold: bool = False) -> int:
        """Index into cellXfs for a cell with this number format and weight."""
        key = (number_format, bold)
        if key in self._cache:
            return self._cache[key]
        num_id = self._number_format_id(number_format) if number_format else 0
        font_id = self._bold_font_id() if bold else 0
        wanted = {"numFmtId": str(num_id), "fontId": str(font_id), "fillId": "0", "borderId": "0"}
        wanted["xfId"] = "0"
        if num_id:
            wanted["applyNumberFormat"] = "1"
        if bold:
            wanted["applyFont"] = "1"
        if not num_id and not bold:
            index = 0
        else:
            section = self._section("cellXfs")
            index = next(
                (
                    i
                    for i, xf in enumerate(section.findall(f"{{{self.ns}}}xf"))
                    if dict(xf.attrib) == wanted and len(xf) == 0
                ),
                None,
            )
            if index is None:
                xf = etree.Element(f"{{{self.ns}}}xf")
                for attr, value in wanted.items():
                    xf.set(attr, value)
                index = self._append(section, xf)
        self._cache[key] = index
        return index

    def save(self) -> None:
        if self.dirty:
            self.package.set(self.part, serialize_xml(self.root))


def add_sheet_titles(package: Package, names: list[str]) -> None:
    """Keep ``docProps/app.xml`` listing every worksheet after sheets are added.

    Excel ignores a stale app.xml, but file browsers and indexers show it, so
    when its layout is the usual one (a "Worksheets" heading pair counting the
    first titles) the new names go in; any other layout is left as it was.
    """
    data = package.get("docProps/app.xml")
    if not data or not names:
        return
    root = parse_xml(data)
    vt = f"{{{NS_VT}}}"
    pairs = root.find(f"{{{NS_EXT_PROPS}}}HeadingPairs/{vt}vector")
    titles = root.find(f"{{{NS_EXT_PROPS}}}TitlesOfParts/{vt}vector")
    if pairs is None or titles is None:
        return
    variants = list(pairs)
    offset = 0
    for heading, count in zip(variants[::2], variants[1::2], strict=False):
        label, number = heading.find(f"{vt}lpstr"), count.find(f"{vt}i4")
        if label is None or number is None or not (number.text or "").strip().isdigit():
            return
        if label.text in ("Worksheets", "Arbeitsblätter", "Feuilles de calcul"):
            existing = int(number.text)
            anchor = offset + existing
            for step, name in enumerate(names):
                title = etree.Element(f"{vt}lpstr")
                title.text = name
                titles.insert(anchor + step, title)
            number.text = str(existing + len(names))
            titles.set("size", str(len(titles)))
            package.set("docProps/app.xml", serialize_xml(root))
            return
        offset += int(number.text)


def drop_calc_chain_cells(
    package: Package, workbook: WorkbookPart, types: ContentTypes, sheet_ids: set[str]
) -> None:
    """Remove calcChain entries of replaced sheets; drop the chain if nothing is left.

    The chain only tells Excel in which order to recalculate; a missing one is
    rebuilt on open, but an entry pointing at a cell without a formula is what
    makes Excel "repair" a file.
    """
    chain_part = next(
        (t for _, rtype, t, _ in package.rels(workbook.part) if rtype.endswith("/calcChain")), None
    )
    data = package.get(chain_part) if chain_part else None
    if not data or not sheet_ids:
        return
    root = parse_xml(data)
    current, changed = None, False
    for cell in list(root):
        # A <c> without i belongs to the same sheet as the one before it.
        current = cell.get("i", current)
        if current in sheet_ids:
            root.remove(cell)
            changed = True
        elif current is not None:
            cell.set("i", current)
    if not changed:
        return
    if len(root):
        package.set(chain_part, serialize_xml(root))
        return
    package.delete(chain_part)
    workbook.rels.remove_type("/calcChain")
    types.forget([chain_part])
