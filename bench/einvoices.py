"""E-invoice figures: files read per second (Factur-X PDFs, XML), and the peak memory of an inbox
ingesting thousands of files from a watched folder and listing them to a run (streamed, bounded).

The samples are the public corpus in ``../shared/einvoices`` beside the repository; the figures
are skipped, with a note on stderr, where it is absent.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = (ROOT / ".." / "shared" / "einvoices").resolve()
# The ingest figure's file: one EN16931 CII invoice (13 KB), its number changed per copy.
INGEST_SAMPLE = "XML-Rechnung/CII/EN16931_Einfach.cii.xml"
INGEST_NUMBER = b"<ram:ID>471102</ram:ID>"
INGEST_BUYER = "Kunden AG Mitte"


def _readable(paths: list[Path]) -> list[tuple[bytes, object]]:
    """Each sample with its buyer as our company (so that it reads); the files that do not read
    at all (the corpus' failing ones, files that are no invoice) are left out."""
    from connectors.providers.einvoice import (
        EInvoiceError,
        OurCompany,
        detect,
        facturx,
        read_einvoice,
    )
    from connectors.providers.einvoice.cii import read_cii
    from connectors.providers.einvoice.mapping import _party_identifiers
    from connectors.providers.einvoice.ubl import read_ubl
    from connectors.providers.einvoice.xmlread import parse_xml

    found = []
    for path in paths:
        content = path.read_bytes()
        try:
            xml = content
            if detect.sniff(content) is detect.Kind.PDF:
                xml = facturx.extract_xml(content)[1]
            root = parse_xml(xml)
            syntax = detect.check_root(root)
            document = read_cii(root) if syntax in ("cii", "zugferd1") else read_ubl(root)
            buyer = document.buyer
            company = OurCompany(identifiers=tuple(_party_identifiers(buyer)), name=buyer.name)
            read_einvoice(content, company=company)
        except EInvoiceError:
            continue
        found.append((content, company))
    return found


def _rate(name: str, files: list[tuple[bytes, object]], seconds: float, emit: Callable) -> None:
    from connectors.providers.einvoice import read_einvoice

    if not files:
        print(f"{name}: no readable sample", file=sys.stderr)
        return
    count = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for content, company in files:
            read_einvoice(content, company=company)
            count += 1
    emit(name, count / (time.perf_counter() - start), "files/s")


def bench_read(quick: bool, emit: Callable) -> None:
    if not SAMPLES.is_dir():
        print(f"einvoice figures skipped: no samples at {SAMPLES}", file=sys.stderr)
        return
    pdfs = sorted(SAMPLES.rglob("*.pdf"))
    xmls = sorted(SAMPLES.rglob("*.xml"))
    seconds = 3.0 if quick else 10.0
    _rate("einvoice_facturx_pdf_read_per_s", _readable(pdfs), seconds, emit)
    _rate("einvoice_xml_read_per_s", _readable(xmls), seconds, emit)


def bench_ingest(quick: bool, emit: Callable) -> None:
    """N files dropped in a watched folder: the scheduled sync stores them (FOLDER_BATCH per
    pass) and lists every invoice to a run; peak resident memory above the start."""
    if not SAMPLES.is_dir():
        return
    from connectors.canonical import Direction, Invoice
    from connectors.models import Client, Connection
    from connectors.selectors import connector_for

    count = 2_000 if quick else 10_000
    template = (SAMPLES / INGEST_SAMPLE).read_bytes()
    assert template.count(INGEST_NUMBER) == 1
    with tempfile.TemporaryDirectory(prefix="invsync-inbox-") as folder:
        for i in range(count):
            number = f"<ram:ID>B-{i:06d}</ram:ID>".encode()
            Path(folder, f"invoice-{i:06d}.xml").write_bytes(
                template.replace(INGEST_NUMBER, number)
            )
        client = Client.objects.create(name="Bench inbox")
        connection = Connection.objects.create(
            client=client, name="Inbox", kind="invoicing", provider="einvoice_inbox",
            auth_kind="none", settings={"company_name": INGEST_BUYER, "folder": folder},
        )  # fmt: skip
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        source = connector_for(connection)
        passes = 0
        while any(p.is_file() for p in Path(folder).iterdir()):
            source.collect_folder()
            passes += 1
        stored = time.perf_counter() - start
        listed = sum(
            isinstance(item, Invoice)
            for item in source.iter_invoices(since=None, directions=list(Direction))
        )
        elapsed = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert listed == count, (listed, count)
    emit("einvoice_ingest_files", count, "files")
    emit("einvoice_ingest_store_per_s", count / stored, "files/s")
    emit("einvoice_ingest_total_per_s", count / elapsed, "files/s")
    emit("einvoice_ingest_peak_rss_growth", (peak - baseline) / 1024, "MB")
    emit("einvoice_ingest_peak_rss", peak / 1024, "MB")
