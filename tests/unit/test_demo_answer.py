"""The demo's answer, whatever API asks (pure): when it calls a tool, that ``max_tokens``
cuts reasoning and answer together to exactly that many tokens, ``n`` choices, and the
same ask always getting the same reply."""

from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from saferouter.gateway.demo_answer import (
    DemoAsk,
    DemoTool,
    Finish,
    JsonOutput,
    ToolMode,
    ToolResult,
    answer_to,
    split_tokens,
)

WEATHER = DemoTool(
    "get_weather",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["city", "unit"],
    },
)
TIME = DemoTool("get_time", {"type": "object", "properties": {"zone": {"type": "string"}}})
ASK = DemoAsk(
    model="demo", texts=("what is the weather",), last_user="what is the weather", reasoning=True
)


def test_the_echo_without_tools() -> None:
    (choice,) = answer_to(ASK).choices
    assert choice.call is None and choice.finish is Finish.STOP
    assert "".join(choice.content).startswith('You said: "what is the weather".')
    assert "".join(choice.reasoning).startswith("The user wrote 4 words in 1 message.")


@pytest.mark.parametrize(
    ("mode", "forced", "results", "called"),
    [
        (ToolMode.AUTO, None, (), "get_weather"),  # the first tool
        (ToolMode.REQUIRED, None, (), "get_weather"),
        (ToolMode.REQUIRED, "get_time", (), "get_time"),  # the named one
        (ToolMode.NONE, None, (), None),
        (ToolMode.AUTO, None, (ToolResult("get_weather", "sunny"),), None),  # the loop ends
        (ToolMode.REQUIRED, None, (ToolResult("get_weather", "sunny"),), "get_weather"),
        (ToolMode.REQUIRED, "get_time", (ToolResult("get_time", "noon"),), "get_time"),
    ],
)
def test_which_tool_is_called(
    mode: ToolMode, forced: str | None, results: tuple[ToolResult, ...], called: str | None
) -> None:
    ask = DemoAsk(
        model="demo",
        texts=("hi",),
        last_user="hi",
        reasoning=False,
        tools=(WEATHER, TIME),
        tool_mode=mode,
        forced_tool=forced,
        tool_results=results,
    )
    (choice,) = answer_to(ask).choices
    if called is None:
        assert choice.call is None and choice.finish is Finish.STOP
        return
    assert choice.call is not None and choice.call.name == called
    assert choice.finish is Finish.TOOL_CALLS and choice.content == ()
    arguments = json.loads("".join(choice.call.arguments))
    assert arguments == (
        {"city": "demo city", "unit": "c"} if called == "get_weather" else {"zone": "demo zone"}
    )


def test_a_tool_result_is_told_by_name() -> None:
    ask = DemoAsk(
        model="demo-mini",
        texts=("weather?", "sunny, 21 C"),
        last_user="weather?",
        reasoning=False,
        tools=(WEATHER,),
        tool_results=(ToolResult("get_weather", "sunny, 21 C"),),
    )
    (choice,) = answer_to(ask).choices
    assert "".join(choice.content).startswith('The tool get_weather returned: "sunny, 21 C".')


def test_json_answers() -> None:
    (plain,) = answer_to(
        DemoAsk(model="d", texts=("x",), last_user="x", reasoning=False, json_output=JsonOutput())
    ).choices
    assert json.loads("".join(plain.content))["answer"].startswith('You said: "x".')
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    ask = DemoAsk(
        model="d", texts=("x",), last_user="x", reasoning=False, json_output=JsonOutput(schema)
    )
    assert json.loads("".join(answer_to(ask).choices[0].content)) == {"n": 1}


def test_n_choices_differ_and_are_all_billed() -> None:
    reply = answer_to(
        DemoAsk(model="demo", texts=("hi",), last_user="hi", reasoning=True, choices=3)
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert ["".join(c.content).split(".")[0] for c in reply.choices] == [
        f"Choice {i} of 3" for i in (1, 2, 3)
    ]
    assert reply.completion_tokens == sum(len(c.reasoning) + len(c.content) for c in reply.choices)
    assert reply.reasoning_tokens == sum(len(c.reasoning) for c in reply.choices)


@pytest.mark.parametrize("tools", [(), (WEATHER,)])
def test_max_tokens_cuts_at_exactly_that_many_tokens(tools: tuple[DemoTool, ...]) -> None:
    ask = DemoAsk(
        model="demo", texts=("hi there",), last_user="hi there", reasoning=True, tools=tools
    )
    (whole,) = answer_to(ask).choices
    for budget in range(1, whole.tokens + 3):
        (cut,) = answer_to(attrs.evolve(ask, max_tokens=budget)).choices
        assert cut.tokens == min(budget, whole.tokens)
        assert (cut.finish is Finish.LENGTH) == (budget < whole.tokens)
        # what is sent is the start of the whole answer: reasoning first
        assert whole.reasoning[: len(cut.reasoning)] == cut.reasoning
        assert whole.content[: len(cut.content)] == cut.content
        if cut.call is not None and whole.call is not None:
            assert whole.call.arguments[: len(cut.call.arguments)] == cut.call.arguments


def test_the_same_ask_gets_the_same_reply() -> None:
    ask = DemoAsk(
        model="demo", texts=("a", "b"), last_user="b", reasoning=True, tools=(WEATHER,), choices=2
    )
    assert answer_to(ask) == answer_to(ask)


@given(st.text())
def test_tokens_join_back_to_the_text(text: str) -> None:
    assert "".join(split_tokens(text)) == text
