from __future__ import annotations

import threading
import time

from memory.dispatch import Dispatcher


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_after_a_quiet_spell_the_first_ids_go_at_once_and_the_rest_of_a_burst_gathers() -> None:
    sent: list[list[str]] = []
    dispatcher = Dispatcher(sent.append, delay=5.0)
    dispatcher.submit(["first"])
    wait_for(lambda: sent == [["first"]], timeout=4.0)  # no waiting for a burst that may never come
    for i in range(5):
        dispatcher.submit([f"id-{i}"])
    wait_for(lambda: sum(len(batch) for batch in sent) == 6)
    assert sent == [["first"], [f"id-{i}" for i in range(5)]]


def test_flush_sends_what_is_pending_in_the_caller() -> None:
    sent: list[list[str]] = []
    dispatcher = Dispatcher(sent.append, delay=60)
    dispatcher.submit(["a", "b"])
    dispatcher.flush()
    assert sent == [["a", "b"]]
    dispatcher.flush()
    assert sent == [["a", "b"]]


def test_a_failing_send_does_not_stop_later_sends() -> None:
    sent: list[list[str]] = []
    calls = threading.Event()

    def send(ids: list[str]) -> None:
        if not calls.is_set():
            calls.set()
            raise ConnectionError("broker down")
        sent.append(ids)

    dispatcher = Dispatcher(send, delay=0.01)
    dispatcher.submit(["lost-to-reconcile"])
    wait_for(calls.is_set)
    dispatcher.submit(["later"])
    wait_for(lambda: sent == [["later"]])


def test_ids_the_broker_refused_are_sent_again_once_it_is_back() -> None:
    sent: list[list[str]] = []
    refused = threading.Event()

    def send(ids: list[str]) -> list[str]:
        if not refused.is_set():  # the first attempt: the broker is restarting
            refused.set()
            return ids
        sent.append(ids)
        return []

    dispatcher = Dispatcher(send, delay=0.01)
    dispatcher.submit(["a", "b"])
    wait_for(refused.is_set)
    dispatcher.submit(["c"])
    wait_for(lambda: sorted(i for batch in sent for i in batch) == ["a", "b", "c"])
    assert sent[0][:2] == ["a", "b"]  # the oldest go first
