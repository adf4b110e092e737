"""Retrieval evaluation on LoCoMo-format conversations (`easymemory eval locomo FILE`).

Each conversation goes into a tenant of its own, created for the run and removed after it.
Turns are stored through the same service a client uses (`memory_create_many`) and embedded
with the same enrichment steps the worker runs (embedding, then the graph hooks), in-process. Every
answerable question (categories 1-4) with evidence is run through the real `search()`.

recall@k of one question = |evidence ∩ dia_ids of the top k| / |evidence|, averaged over questions
("turn" level). At the "session" level, which peers publish, a session counts as found when any of
its turns is in the top k: |evidence sessions ∩ sessions of the top k| / |evidence sessions|. Both
levels are computed from the same ranked turns. The same run scores two baselines on the same
texts: BM25 (rank-bm25, lowercase word tokens)
and dense cosine retrieval with the same embedding vectors.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi

from accounts.models import Tenant
from accounts.principal import Principal
from accounts.scoping import scoped
from accounts.services import tenant_create
from memory import embeddings
from memory.answer_judge import AnswerJudge
from memory.enrichment import run_enrichment_hooks
from memory.models import Kind, MemoryEmbedding
from memory.search import search
from memory.services import MemoryInput, memory_create_many, memory_embed_batch

ANSWERABLE = (1, 2, 3, 4)
LEVELS = ("turn", "session")
METHODS = ("easymemory", "bm25", "dense")
INGEST_BATCH = 200
EMBED_BATCH = 256
_WORD = re.compile(r"\w+")
_DIA_SESSION = re.compile(r"^D(\d{1,4}):")
_SESSION_DATE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*([ap]m)\s+on\s+(\d{1,2})\s+([A-Za-z]+),?\s+(\d{4})\s*$", re.I)
_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}

# The common mapping of LoCoMo's category numbers.
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}

Progress = Callable[[str], None]
Step = Callable[[int, int | None], None]  # (turns embedded + questions asked, their total)


class _Steps:
    def __init__(self, total: int, callback: Step | None) -> None:
        self.done, self.total, self.callback = 0, total, callback

    def advance(self, count: int) -> None:
        self.done += count
        if self.callback is not None:
            self.callback(self.done, self.total)


class EvalFormatError(ValueError):
    """The file is not in the LoCoMo format; the message says where."""


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    session: int
    session_date: str
    occurred_at: datetime | None


@dataclass(frozen=True)
class Question:
    question: str
    evidence: tuple[str, ...]
    category: int
    answer: str = ""  # the gold answer, for the optional answer-and-judge step


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question]


@dataclass
class MethodResult:
    recall: dict[int, float] = field(default_factory=dict)
    by_category: dict[int, dict[int, float]] = field(default_factory=dict)


def parse_session_date(raw: str) -> datetime | None:
    """'1:56 pm on 8 May, 2023' → an aware datetime (UTC); None when it does not parse."""
    match = _SESSION_DATE.match(raw or "")
    if not match:
        return None
    hour, minute, half, day, month, year = match.groups()
    month_number = _MONTHS.get(month.lower())
    if month_number is None:
        return None
    hour_24 = int(hour) % 12 + (12 if half.lower() == "pm" else 0)
    return datetime(int(year), month_number, int(day), hour_24, int(minute), tzinfo=UTC)


def turn_text(speaker: str, text: str, caption: str | None) -> str:
    """The memory text of one turn: "Speaker: text", plus the shared image's caption when there is one."""
    body = f"{speaker}: {text}".strip()
    if caption:
        body += f" [image: {caption}]"
    return body


def load_locomo(path: Path) -> list[Conversation]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalFormatError(f"{path}: {exc}") from exc
    if not isinstance(raw, list):
        raise EvalFormatError(f"{path}: expected a JSON array of conversations")
    conversations = []
    for index, sample in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(sample, dict) or not isinstance(sample.get("conversation"), dict):
            raise EvalFormatError(f"{where}: needs a 'conversation' object")
        conv = sample["conversation"]
        turns: list[Turn] = []
        number = 1
        while f"session_{number}" in conv:
            date = str(conv.get(f"session_{number}_date_time", ""))
            for turn in conv[f"session_{number}"]:
                if not isinstance(turn, dict) or not {"speaker", "dia_id", "text"} <= set(turn):
                    raise EvalFormatError(f"{where}.session_{number}: turns need speaker, dia_id and text")
                turns.append(
                    Turn(
                        dia_id=str(turn["dia_id"]),
                        speaker=str(turn["speaker"]),
                        text=turn_text(str(turn["speaker"]), str(turn["text"]), turn.get("blip_caption")),
                        session=number,
                        session_date=date,
                        occurred_at=parse_session_date(date),
                    )
                )
            number += 1
        questions = [
            Question(
                question=str(qa["question"]),
                evidence=tuple(str(e) for e in qa["evidence"]),
                category=int(qa["category"]),
                answer=str(qa.get("answer", "")),
            )
            for qa in sample.get("qa", [])
            if isinstance(qa, dict) and qa.get("category") in ANSWERABLE and qa.get("evidence") and qa.get("question")
        ]
        conversations.append(
            Conversation(sample_id=str(sample.get("sample_id", index)), turns=turns, questions=questions)
        )
    return conversations


def session_of(dia_id: str, known: dict[str, int]) -> str:
    """The session an evidence or turn id belongs to: the turn's own session when the id is a turn of
    the conversation, else the number in "D<session>:<turn>" (a few evidence ids in LoCoMo are typos)."""
    if dia_id in known:
        return str(known[dia_id])
    match = _DIA_SESSION.match(dia_id)
    return match.group(1) if match else dia_id


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def recall_at(ranked: Sequence[set[str]], evidence: Sequence[str], k: int) -> float:
    found: set[str] = set()
    for dia_ids in ranked[:k]:
        found |= dia_ids
    wanted = set(evidence)
    return len(wanted & found) / len(wanted)


class _Scores:
    """Per-level, per-method, per-k lists of recall values, kept with the question's category."""

    def __init__(self, ks: Sequence[int]) -> None:
        self.ks = list(ks)
        self.values: dict[tuple[str, str], list[tuple[int, dict[int, float]]]] = {}

    def add(
        self,
        method: str,
        question: Question,
        ranked: Sequence[set[str]],
        sessions: dict[str, int],
        *,
        per_k: dict[int, Sequence[set[str]]] | None = None,
    ) -> None:
        """Score one method's ranking of one question at both levels. `per_k` gives a separate
        ranking for each k when the method's top k is not a prefix of its top k' (search() fuses
        k-dependent candidate lists)."""
        evidence_sessions = [session_of(e, sessions) for e in question.evidence]
        turn: dict[int, float] = {}
        session: dict[int, float] = {}
        for k in self.ks:
            ranking = per_k[k] if per_k is not None else ranked
            turn[k] = recall_at(ranking, question.evidence, k)
            as_sessions = [{session_of(d, sessions) for d in dia_ids} for dia_ids in ranking]
            session[k] = recall_at(as_sessions, evidence_sessions, k)
        self.values.setdefault(("turn", method), []).append((question.category, turn))
        self.values.setdefault(("session", method), []).append((question.category, session))

    def result(self, level: str, method: str) -> MethodResult:
        rows = self.values.get((level, method), [])
        out = MethodResult()
        for k in self.ks:
            out.recall[k] = float(np.mean([r[k] for _, r in rows])) if rows else 0.0
            for category in sorted({c for c, _ in rows}):
                values = [r[k] for c, r in rows if c == category]
                out.by_category.setdefault(category, {})[k] = float(np.mean(values))
        return out


def _ingest(
    principal: Principal, conversation: Conversation, steps: _Steps
) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Store the turns; returns memory id → the dia_ids it holds (a repeated turn is stored once),
    and memory id → its text."""
    holds: dict[str, set[str]] = {}
    texts: dict[str, str] = {}
    items = [
        MemoryInput(
            content=turn.text,
            kind=Kind.MESSAGE.value,
            metadata={
                "dia_id": turn.dia_id,
                "speaker": turn.speaker,
                "session": turn.session,
                "session_date": turn.session_date,
            },
            session_id=f"{conversation.sample_id}:session_{turn.session}",
            occurred_at=turn.occurred_at,
        )
        for turn in conversation.turns
    ]
    for start in range(0, len(items), INGEST_BATCH):
        results = memory_create_many(principal=principal, items=items[start : start + INGEST_BATCH])
        for turn, result in zip(conversation.turns[start : start + INGEST_BATCH], results, strict=True):
            assert result.memory is not None  # None only when the memory policy declines an item
            holds.setdefault(str(result.memory.id), set()).add(turn.dia_id)
            texts[str(result.memory.id)] = result.memory.content
    ids = list(holds)
    for start in range(0, len(ids), EMBED_BATCH):
        batch = ids[start : start + EMBED_BATCH]
        memory_embed_batch(memory_ids=batch)
        run_enrichment_hooks(batch)  # graph extraction, as the worker's task does after embedding
        # Counted in turns (a repeated turn is one memory): the total is known before storing.
        stored = sum(len(holds[mid]) for mid in batch)
        steps.advance(stored)
    steps.advance(len(conversation.turns) - sum(len(held) for held in holds.values()))
    return holds, texts


def _evaluate_conversation(
    principal: Principal, conversation: Conversation, ks: Sequence[int], scores: _Scores, steps: _Steps
) -> None:
    holds, texts = _ingest(principal, conversation, steps)
    ids = list(holds)
    name = embeddings.model_name()
    vectors = dict(scoped(MemoryEmbedding, principal.tenant).filter(model=name).values_list("memory_id", "embedding"))
    matrix = np.array([vectors[uuid.UUID(mid)] for mid in ids], dtype=np.float32)
    bm25 = BM25Okapi([tokens(texts[mid]) for mid in ids])
    sessions = {turn.dia_id: turn.session for turn in conversation.turns}
    deepest = max(ks)
    for question in conversation.questions:
        per_k: dict[int, Sequence[set[str]]] = {
            k: [holds[str(hit.memory.id)] for hit in search(principal, question.question, k=k)] for k in ks
        }
        scores.add("easymemory", question, per_k[deepest], sessions, per_k=per_k)
        bm25_order = np.argsort(-bm25.get_scores(tokens(question.question)), kind="stable")[:deepest]
        scores.add("bm25", question, [holds[ids[i]] for i in bm25_order], sessions)
        query_vector = np.array(embeddings.embed_query(question.question, name), dtype=np.float32)
        dense_order = np.argsort(-(matrix @ query_vector), kind="stable")[:deepest]
        scores.add("dense", question, [holds[ids[i]] for i in dense_order], sessions)
        steps.advance(1)


def run_locomo(
    path: Path,
    *,
    ks: Sequence[int] = (5, 10, 20),
    progress: Progress = print,
    keep_tenants: bool = False,
    answering: AnswerJudge | None = None,
    steps: Step | None = None,
) -> dict[str, Any]:
    """Evaluate retrieval on a LoCoMo file; returns the figures as a JSON-ready dict. `progress`
    gets a line per conversation; `steps` the count of turns embedded and questions asked."""
    conversations = load_locomo(path)
    counter = _Steps(sum(len(c.turns) + len(c.questions) for c in conversations), steps)
    ks = sorted(set(ks))
    scores = _Scores(ks)
    run = uuid.uuid4().hex[:8]
    total_questions = 0
    for conversation in conversations:
        tenant = tenant_create(
            name=f"eval locomo {conversation.sample_id}", slug=f"eval-{run}-{conversation.sample_id}"
        )
        progress(
            f"{conversation.sample_id}: {len(conversation.turns)} turns, {len(conversation.questions)} questions"
            f" (tenant {tenant.slug})"
        )
        try:
            _evaluate_conversation(Principal.system(tenant), conversation, ks, scores, counter)
            if answering is not None:
                _answer_conversation(Principal.system(tenant), conversation, answering, progress)
        finally:
            if not keep_tenants:
                _remove_eval_tenant(tenant)
        total_questions += len(conversation.questions)
    report: dict[str, Any] = {
        "file": str(path),
        "conversations": len(conversations),
        "questions": total_questions,
        "k": ks,
        "sessions": sum(len({t.session for t in c.turns}) for c in conversations),
    }
    for level in LEVELS:
        methods = {name: scores.result(level, name) for name in METHODS}
        best_baseline = {k: max(methods["bm25"].recall[k], methods["dense"].recall[k]) for k in ks}
        report[level] = {
            "recall": {name: {str(k): round(r.recall[k], 4) for k in ks} for name, r in methods.items()},
            "recall_by_category": {
                name: {str(c): {str(k): round(v, 4) for k, v in per.items()} for c, per in r.by_category.items()}
                for name, r in methods.items()
            },
            "ratio_to_best_baseline": {
                str(k): round(methods["easymemory"].recall[k] / best_baseline[k], 3) if best_baseline[k] else None
                for k in ks
            },
        }
    if answering is not None:
        report["answers"] = answering.report()
    return report


def _answer_conversation(
    principal: Principal, conversation: Conversation, answering: AnswerJudge, progress: Progress
) -> None:
    """The answer-and-judge step over one conversation's questions (those with a gold answer)."""
    questions = [q for q in conversation.questions if q.answer]
    for number, question in enumerate(questions, start=1):
        answering.run(principal, question.question, question.answer, question.category)
        if number % 25 == 0 or number == len(questions):
            progress(f"  {conversation.sample_id}: {number}/{len(questions)} answered and judged")


def format_answers(report: dict[str, Any]) -> str:
    """The LLM-judge accuracy table of a run with `--answer-model`."""
    answers = report.get("answers")
    if not answers:
        return ""
    lines = [
        "",
        f"LLM-judge accuracy (answers by {answers['answer_model']} from the top {answers['k']} memories,"
        f" judged by {answers['judge_model']})",
        f"{'all categories':<28}{answers['accuracy']:>9.3f}   ({answers['questions']} questions)",
    ]
    for category, value in sorted(answers["accuracy_by_category"].items(), key=lambda item: int(item[0])):
        label = f"  category {category} ({CATEGORY_NAMES.get(int(category), '?')})"
        lines.append(f"{label:<28}{value:>9.3f}")
    if answers["unparsed_judgements"]:
        lines.append(f"{answers['unparsed_judgements']} judgements had no CORRECT/WRONG label (counted as WRONG)")
    return "\n".join(lines)


def _remove_eval_tenant(tenant: Tenant) -> None:
    # The run's own tenant: deleting it cascades to its memories, embeddings and history.
    if not tenant.slug.startswith("eval-"):
        raise ValueError(f"refusing to remove tenant {tenant.slug!r}: not an evaluation tenant")
    tenant.delete()


def format_table(report: dict[str, Any], levels: Sequence[str] = ("turn",)) -> str:
    ks = report["k"]
    header = f"{'method':<28}" + "".join(f"{'R@' + str(k):>9}" for k in ks)
    lines = [
        f"{report['questions']} questions in {report['conversations']} conversations ({report['sessions']} sessions)"
    ]
    labels = {"bm25": "BM25 (rank-bm25)", "dense": "dense (cosine)", "easymemory": "EasyMemory search()"}
    for level in levels:
        figures = report[level]
        lines += ["", f"{level}-level recall", header, "-" * len(header)]
        for name in ("bm25", "dense", "easymemory"):
            lines.append(f"{labels[name]:<28}" + "".join(f"{figures['recall'][name][str(k)]:>9.3f}" for k in ks))
        ratios = figures["ratio_to_best_baseline"]
        lines.append(f"{'× best baseline':<28}" + "".join(f"{(ratios[str(k)] or 0):>8.2f}×" for k in ks))
        by_category = figures["recall_by_category"]["easymemory"]
        for category in sorted(by_category, key=int):
            label = f"  category {category} ({CATEGORY_NAMES.get(int(category), '?')})"
            lines.append(f"{label:<28}" + "".join(f"{by_category[category][str(k)]:>9.3f}" for k in ks))
    return "\n".join(lines)
