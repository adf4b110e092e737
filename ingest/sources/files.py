"""Text out of uploaded documents: .md, .txt, .pdf (pypdf), .docx (python-docx), .html (text only)."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import PurePath

from ingest.sources.markdown import NotText, decode_text

SUPPORTED = {".md", ".markdown", ".txt", ".pdf", ".docx", ".html", ".htm"}


class UnsupportedFile(ValueError):
    pass


class _TextExtractor(HTMLParser):
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def extension_of(name: str) -> str:
    return PurePath(name).suffix.lower()


def extract_text(name: str, raw: bytes) -> str:
    """The text of a document; raises UnsupportedFile / NotText with a message for the user."""
    ext = extension_of(name)
    if ext not in SUPPORTED:
        raise UnsupportedFile(f"unsupported file type {ext or '(none)'}; use one of {', '.join(sorted(SUPPORTED))}")
    if not raw:
        raise NotText("the file is empty")
    if ext == ".pdf":
        return _pdf_text(raw)
    if ext == ".docx":
        return _docx_text(raw)
    text = decode_text(raw)
    if ext in (".html", ".htm"):
        return html_to_text(text)
    return text


def _pdf_text(raw: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise NotText("the PDF is encrypted")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise NotText(f"not a readable PDF: {exc}") from exc
    return "\n\n".join(p for p in pages if p)


def _docx_text(raw: bytes) -> str:
    import zipfile

    import docx

    from ingest.sources.safezip import UnsafeArchive, archive_check

    try:
        archive_check(raw)  # python-docx would inflate every part unchecked
    except UnsafeArchive as exc:
        raise NotText(f"not a safe .docx file: {exc}") from exc
    try:
        document = docx.Document(io.BytesIO(raw))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise NotText(f"not a readable .docx file: {exc}") from exc
    parts = [p.text for p in document.paragraphs if p.text.strip()]
    for table in document.tables:
        for row in table.rows:
            parts.append(" | ".join(cell.text.strip() for cell in row.cells))
    return "\n\n".join(parts)
