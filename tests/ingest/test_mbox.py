from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from memory.models import Memory
from tests.conftest import Persona
from tests.ingest.helpers import run

pytestmark = pytest.mark.django_db

PLAIN = b"""From alice@example.org Mon Mar  4 09:00:00 2024
From: Alice <alice@example.org>
To: Bob <bob@example.org>
Subject: =?utf-8?q?Caf=C3=A9_meeting?=
Date: Mon, 04 Mar 2024 09:00:00 +0000
Message-ID: <m1@example.org>
Content-Type: text/plain; charset=utf-8

Let's meet at the caf\xc3\xa9 at ten.

"""
REPLY = b"""From bob@example.org Mon Mar  4 10:00:00 2024
From: bob@example.org
To: alice@example.org
Subject: Re: Cafe meeting
Date: Mon, 04 Mar 2024 10:00:00 +0000
Message-ID: <m2@example.org>
In-Reply-To: <m1@example.org>
References: <m1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="XX"

--XX
Content-Type: multipart/alternative; boundary="YY"

--YY
Content-Type: text/html; charset=iso-8859-1

<html><body><p>Fine by me, see you <b>there</b>.</p><script>x()</script></body></html>
--YY--
--XX
Content-Type: application/pdf
Content-Disposition: attachment; filename="agenda.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--XX--

"""
LATIN = b"""From carol@example.org Tue Mar  5 08:00:00 2024
From: carol@example.org
Subject: Gr\xfc\xdfe
Message-ID: <m3@example.org>
Content-Type: text/plain; charset=x-unknown-charset

Sch\xf6ne Gr\xfc\xdfe aus K\xf6ln und M\xfcnchen, bis bald.

"""
BROKEN = b"""From dave@example.org Tue Mar  5 09:00:00 2024
From: dave@example.org
Subject: broken mime
Message-ID: <m4@example.org>
Content-Type: multipart/mixed; boundary="never-closed"

--never-closed
Content-Type: text/plain
Content-Transfer-Encoding: base64

!!!not base64 at all!!!
"""


def mbox(persona: Persona, data: bytes):
    return run(persona.principal, "mbox", {}, upload=("mail.mbox", data))


def test_it_imports_mail_with_headers_threads_and_attachment_listing(writer: Persona) -> None:
    job = mbox(writer, PLAIN + REPLY)
    assert job.status == "done", job.error
    assert job.done == 2
    first = Memory.objects.get(metadata__message_id="<m1@example.org>")
    assert first.content.startswith("Subject: Caf\u00e9 meeting\nFrom: Alice <alice@example.org>")
    assert first.content.endswith("Let's meet at the caf\u00e9 at ten.")
    assert first.occurred_at == datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    assert first.metadata["thread_id"] == "<m1@example.org>"
    reply = Memory.objects.get(metadata__message_id="<m2@example.org>")
    assert reply.content.endswith("Fine by me, see you there.")
    assert "x()" not in reply.content
    assert reply.metadata["thread_id"] == "<m1@example.org>"
    assert reply.metadata["in_reply_to"] == "<m1@example.org>"
    assert reply.metadata["attachments"] == [{"filename": "agenda.pdf", "content_type": "application/pdf", "size": 9}]
    assert "JVBER" not in reply.content


def test_unknown_charsets_and_broken_mime_still_import_readable_text(writer: Persona) -> None:
    job = mbox(writer, LATIN + BROKEN)
    assert job.status == "done", job.error
    assert job.failed == 0
    latin = Memory.objects.get(metadata__message_id="<m3@example.org>")
    assert "Sch\u00f6ne Gr\u00fc\u00dfe aus K\u00f6ln" in latin.content
    broken = Memory.objects.get(metadata__message_id="<m4@example.org>")
    assert "broken mime" in broken.content


def test_message_ids_deduplicate_across_files_and_reruns(writer: Persona) -> None:
    mbox(writer, PLAIN + REPLY)
    again = mbox(writer, REPLY + PLAIN + PLAIN)
    assert (again.done, again.skipped, again.memories_created) == (0, 3, 0)
    assert Memory.objects.count() == 2


def test_not_an_mbox_is_refused(writer: Persona) -> None:
    job = mbox(writer, b"\x00\x01binary")
    assert job.status == "failed" and "not an mbox" in job.error
    assert not Memory.objects.exists()


def test_cli_import_mbox(writer: Persona, tmp_path: Path) -> None:
    path = tmp_path / "mail.mbox"
    path.write_bytes(PLAIN)
    out = StringIO()
    call_command("import", "mbox", str(path), "--tenant", "acme", stdout=out)
    assert "1 imported" in out.getvalue()
