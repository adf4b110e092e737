from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Tenant
from memory.evaluation import load_locomo, parse_session_date, recall_at, session_of
from memory.models import Memory

pytestmark = pytest.mark.django_db


def tiny_locomo() -> list[dict[str, Any]]:
    return [
        {
            "sample_id": "tiny-1",
            "conversation": {
                "speaker_a": "Ana",
                "speaker_b": "Ben",
                "session_1_date_time": "1:56 pm on 8 May, 2023",
                "session_1": [
                    {"speaker": "Ana", "dia_id": "D1:1", "text": "Hi Ben! How was your week?"},
                    {"speaker": "Ben", "dia_id": "D1:2", "text": "Great, I adopted a grey kitten called Pixel."},
                    {"speaker": "Ana", "dia_id": "D1:3", "text": "Lovely! I started learning the violin."},
                    {
                        "speaker": "Ben",
                        "dia_id": "D1:4",
                        "text": "Look at this!",
                        "img_url": ["https://example.invalid/x.jpg"],
                        "blip_caption": "a photo of a sailing boat on a lake",
                    },
                ],
                "session_2_date_time": "10:00 am on 20 June, 2023",
                "session_2": [
                    {"speaker": "Ana", "dia_id": "D2:1", "text": "My violin teacher moved to Vienna."},
                    {"speaker": "Ben", "dia_id": "D2:2", "text": "Pixel broke a vase this morning."},
                    {"speaker": "Ana", "dia_id": "D2:3", "text": "I am baking bread for the school fair."},
                ],
            },
            "qa": [
                {
                    "question": "What is the name of Ben's kitten?",
                    "answer": "Pixel",
                    "evidence": ["D1:2"],
                    "category": 4,
                },  # fmt: skip
                {
                    "question": "What did Ana say about the violin?",
                    "answer": "learning",
                    "evidence": ["D1:3", "D2:1"],
                    "category": 1,
                },  # fmt: skip
                {
                    "question": "When did Ben share a sailing boat photo?",
                    "answer": "8 May 2023",
                    "evidence": ["D1:4"],
                    "category": 2,
                },  # fmt: skip
                {
                    "question": "What did Ana say about the moon?",
                    "adversarial_answer": "nothing",
                    "evidence": ["D1:1"],
                    "category": 5,
                },  # fmt: skip
            ],
        }
    ]


@pytest.fixture
def locomo_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(tiny_locomo()), encoding="utf-8")
    return path


def test_it_parses_the_locomo_format(locomo_file: Path) -> None:
    (conversation,) = load_locomo(locomo_file)
    assert [t.dia_id for t in conversation.turns] == ["D1:1", "D1:2", "D1:3", "D1:4", "D2:1", "D2:2", "D2:3"]
    assert conversation.turns[1].text == "Ben: Great, I adopted a grey kitten called Pixel."
    assert conversation.turns[3].text == "Ben: Look at this! [image: a photo of a sailing boat on a lake]"
    assert conversation.turns[4].session == 2
    assert [q.category for q in conversation.questions] == [4, 1, 2]  # category 5 is left out
    assert parse_session_date("1:56 pm on 8 May, 2023").isoformat() == "2023-05-08T13:56:00+00:00"
    assert parse_session_date("12:05 am on 1 January, 2024").isoformat() == "2024-01-01T00:05:00+00:00"
    assert parse_session_date("someday") is None


def test_recall_at_k_counts_the_share_of_evidence_found() -> None:
    ranked = [{"D1:3"}, {"D9:9"}, {"D2:1"}]
    assert recall_at(ranked, ["D1:3", "D2:1"], 1) == 0.5
    assert recall_at(ranked, ["D1:3", "D2:1"], 3) == 1.0
    assert recall_at(ranked, ["D5:5"], 3) == 0.0


def test_the_command_ingests_searches_and_reports(locomo_file: Path, tmp_path: Path) -> None:
    out, err, report_path = StringIO(), StringIO(), tmp_path / "report.json"
    tenants_before = set(Tenant.objects.values_list("slug", flat=True))
    call_command(
        "eval", "locomo", str(locomo_file), "--k", "1", "3", "--json", str(report_path), stdout=out, stderr=err
    )
    text = out.getvalue()
    assert "tiny-1: 7 turns, 3 questions" in text
    assert err.getvalue().startswith("eval locomo: 10 steps in ")  # 7 turns embedded, 3 questions asked
    assert "EasyMemory search()" in text and "BM25" in text and "dense" in text
    report = json.loads(report_path.read_text())
    assert report["questions"] == 3
    assert report["k"] == [1, 3]
    assert report["sessions"] == 2
    for level in ("turn", "session"):
        for method in ("easymemory", "bm25", "dense"):
            assert set(report[level]["recall"][method]) == {"1", "3"}
            assert all(0.0 <= value <= 1.0 for value in report[level]["recall"][method].values())
        # Each question names its evidence plainly: search() finds all of it in the top 3.
        assert report[level]["recall"]["easymemory"]["3"] == 1.0
        assert set(report[level]["recall_by_category"]["easymemory"]) == {"1", "2", "4"}
    # A session is found as soon as any of its turns is: never harder than finding the turns.
    for method in ("easymemory", "bm25", "dense"):
        for k in ("1", "3"):
            assert report["session"]["recall"][method][k] >= report["turn"]["recall"][method][k]
    assert "turn-level recall" in text and "session-level recall" not in text
    assert "category 1 (multi-hop)" in text
    # The run's tenant and its memories are gone.
    assert set(Tenant.objects.values_list("slug", flat=True)) == tenants_before
    assert Memory.objects.count() == 0


def test_session_level_recall_counts_a_session_found_by_any_of_its_turns() -> None:
    sessions = {"D1:1": 1, "D1:2": 1, "D2:1": 2}
    assert session_of("D1:2", sessions) == "1"
    assert session_of("D7:3", sessions) == "7"  # an evidence id that names no stored turn keeps its session number
    ranked = [{session_of("D1:1", sessions)}, {session_of("D9:9", sessions)}]
    # The evidence turn D1:2 is not in the ranking, but its session is.
    assert recall_at(ranked, [session_of("D1:2", sessions)], 1) == 1.0
    assert recall_at([{"D1:1"}], ["D1:2"], 1) == 0.0


def test_the_command_prints_both_levels_when_asked(locomo_file: Path) -> None:
    out = StringIO()
    call_command("eval", "locomo", str(locomo_file), "--k", "3", "--level", "both", stdout=out)
    text = out.getvalue()
    assert "turn-level recall" in text and "session-level recall" in text
    assert "(2 sessions)" in text


def test_the_command_keeps_the_memories_it_was_asked_to_keep(locomo_file: Path) -> None:
    call_command("eval", "locomo", str(locomo_file), "--k", "3", "--keep-tenants", stdout=StringIO())
    tenant = Tenant.objects.get(slug__startswith="eval-", slug__endswith="-tiny-1")
    memory = Memory.objects.get(tenant=tenant, metadata__dia_id="D1:4")
    assert memory.kind == "message"
    assert memory.metadata == {
        "dia_id": "D1:4",
        "speaker": "Ben",
        "session": 1,
        "session_date": "1:56 pm on 8 May, 2023",
    }
    assert memory.occurred_at.isoformat() == "2023-05-08T13:56:00+00:00"
    assert memory.session_id == "tiny-1:session_1"
    assert memory.embeddings.count() == 1


def test_the_command_refuses_a_file_that_is_not_locomo(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}', encoding="utf-8")
    with pytest.raises(CommandError, match="JSON array"):
        call_command("eval", "locomo", str(bad), stdout=StringIO())
    with pytest.raises(CommandError, match="--k"):
        call_command("eval", "locomo", str(bad), "--k", "0", stdout=StringIO())
