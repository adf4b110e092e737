"""The LangGraph store and LangChain retriever against the real server, inside a real LangGraph graph
whose chat model is a local fake (it answers from the memories it is given)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore

from tests.sdk.conftest import SdkServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db]

from easymemory_client import EasyMemory  # noqa: E402 - on sys.path through tests/sdk/conftest.py
from easymemory_client.langchain import EasyMemoryRetriever  # noqa: E402
from easymemory_client.langgraph import EasyMemoryStore  # noqa: E402


class MemoryEchoModel(BaseChatModel):
    """A fake chat model: it answers with the memories its system prompt carries, or "I don't know"."""

    prompts: list[list[BaseMessage]] = []

    @property
    def _llm_type(self) -> str:
        return "memory-echo"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.prompts.append(list(messages))
        system = next((m.content for m in messages if isinstance(m, SystemMessage)), "")
        remembered = [line[2:] for line in str(system).splitlines() if line.startswith("- ")]
        answer = "From memory: " + "; ".join(remembered) if remembered else "I don't know."
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=answer))])


def build_graph(model: MemoryEchoModel, store: BaseStore) -> Any:
    def call_model(state: MessagesState, config: RunnableConfig, *, store: BaseStore) -> dict[str, Any]:
        user_id = config["configurable"]["user_id"]
        namespace = ("memories", user_id)
        last = str(state["messages"][-1].content)
        memories = store.search(namespace, query=last, limit=3)
        system = "You are helpful. What you know about the user:\n" + "\n".join(
            f"- {item.value['content']}" for item in memories
        )
        reply = model.invoke([SystemMessage(content=system), *state["messages"]])
        if last.lower().startswith("remember "):
            store.put(namespace, str(uuid.uuid4()), {"content": last[len("remember ") :]})
        return {"messages": [reply]}

    builder = StateGraph(MessagesState)
    builder.add_node("call_model", call_model)
    builder.add_edge(START, "call_model")
    return builder.compile(store=store)


def test_a_fact_stored_in_one_thread_is_recalled_in_another(sdk_server: SdkServer) -> None:
    em = EasyMemory(sdk_server.url, api_key=sdk_server.keys["langgraph"], timeout=180)
    model = MemoryEchoModel()
    graph = build_graph(model, EasyMemoryStore(em))
    config = {"configurable": {"thread_id": "t1", "user_id": "lg-alice"}}
    graph.invoke({"messages": [HumanMessage("remember my favourite colour is teal")]}, config)

    later = {"configurable": {"thread_id": "t2", "user_id": "lg-alice"}}
    answer = graph.invoke({"messages": [HumanMessage("what is my favourite colour?")]}, later)
    assert "teal" in str(answer["messages"][-1].content)

    stranger = {"configurable": {"thread_id": "t3", "user_id": "lg-bob"}}
    other = graph.invoke({"messages": [HumanMessage("what is my favourite colour?")]}, stranger)
    assert str(other["messages"][-1].content) == "I don't know."
    # The namespace's user label is the memory's user_ref: the server's per-user tools see it.
    assert [m.content for m in em.list(user_ref="lg-alice")] == ["my favourite colour is teal"]
    em.close()


def test_the_store_keeps_basestore_semantics(sdk_server: SdkServer) -> None:
    em = EasyMemory(sdk_server.url, api_key=sdk_server.keys["langgraph"], timeout=180)
    store = EasyMemoryStore(em)
    ns = ("prefs", "lg-carol")
    store.put(ns, "drink", {"content": "Carol drinks oolong tea", "rank": 2})
    store.put(ns, "food", {"content": "Carol is vegetarian", "rank": 5})
    store.put(ns, "twin", {"content": "Carol is vegetarian", "rank": 1})  # same text, another key
    store.put(("prefs", "lg-carol", "work"), "desk", {"note": "standing desk"})  # no text field: JSON

    item = store.get(ns, "drink")
    assert item is not None and item.value == {"content": "Carol drinks oolong tea", "rank": 2}
    assert item.namespace == ns and item.key == "drink"
    assert store.get(ns, "twin").value["rank"] == 1  # type: ignore[union-attr]
    assert store.get(ns, "missing") is None

    store.put(ns, "drink", {"content": "Carol drinks green tea", "rank": 3})
    assert store.get(ns, "drink").value["content"] == "Carol drinks green tea"  # type: ignore[union-attr]

    everything = store.search(("prefs",), limit=10)
    assert {i.key for i in everything} == {"drink", "food", "twin", "desk"}
    assert {i.key for i in store.search(ns, filter={"rank": {"$gte": 3}})} == {"drink", "food"}
    assert [i.key for i in store.search(ns, filter={"rank": 5})] == ["food"]
    # The changed memory is found by its words at once and by meaning once the worker has
    # re-embedded it; until then the vector list still ranks the other one.
    deadline = time.monotonic() + 120
    while (hits := store.search(ns, query="what tea does Carol drink", limit=2))[0].key != "drink":
        assert time.monotonic() < deadline, f"search still ranks {hits[0].key!r} first"
        time.sleep(0.5)
    assert hits[0].score is not None
    assert len(store.search(("prefs",), limit=2, offset=1)) == 2

    assert store.list_namespaces(prefix=("prefs",)) == [("prefs", "lg-carol"), ("prefs", "lg-carol", "work")]
    assert store.list_namespaces(prefix=("prefs",), max_depth=2) == [("prefs", "lg-carol")]
    assert store.list_namespaces(suffix=("work",)) == [("prefs", "lg-carol", "work")]

    store.delete(ns, "food")
    assert store.get(ns, "food") is None

    async def async_side() -> None:
        await store.aput(ns, "sport", {"content": "Carol climbs on Sundays"})
        fetched = await store.aget(ns, "sport")
        assert fetched is not None and fetched.value["content"] == "Carol climbs on Sundays"
        assert {i.key for i in await store.asearch(ns, query="climbing")} >= {"sport"}

    asyncio.run(async_side())

    retriever = EasyMemoryRetriever(client=em, k=3, filters={"user_ref": "lg-carol"})
    documents = retriever.invoke("green tea")
    assert documents and "green tea" in documents[0].page_content and documents[0].metadata["evidence"]
    em.close()


def test_the_store_only_sees_its_own_tenant(sdk_server: SdkServer) -> None:
    mine = EasyMemoryStore(EasyMemory(sdk_server.url, api_key=sdk_server.keys["langgraph"], timeout=180))
    theirs = EasyMemoryStore(EasyMemory(sdk_server.url, api_key=sdk_server.keys["outsider"], timeout=180))
    mine.put(("secrets", "lg-dave"), "pin", {"content": "Dave's locker code is 4312"})
    assert theirs.get(("secrets", "lg-dave"), "pin") is None
    assert theirs.search(("secrets",), query="locker code") == []
    assert theirs.list_namespaces(prefix=("secrets",)) == []
