"""What the demo provider answers, whichever API asks (pure): the sans-I/O core that
every API's demo frames (chat in :mod:`.demo`, Messages in :mod:`.demo_messages`,
Responses in :mod:`.demo_responses`).

An API's demo reads its request into a :class:`DemoAsk` (the conversation's text, the
tools and how they may be chosen, the tool results the conversation ends with, the
output format, the token limit, ``n``) and :func:`answer_to` decides the
:class:`DemoReply`: per choice, reasoning pieces, then content pieces or one tool call
whose argument pieces are valid JSON for the tool's schema (:mod:`.demo_schema`).

One piece is one token, and one streamed delta: so ``max_tokens`` cuts reasoning,
content and tool arguments alike at exactly that many pieces, and the usage counts
exactly the pieces sent (a client can count the deltas it got). Text splits into words
and runs of punctuation, each with the spaces before it (:func:`split_tokens`). No
model runs: the same ask gives the same reply; only the ids a framing adds differ.
"""

from __future__ import annotations

import enum
import json
import re

import attrs

from .demo_schema import example_of

NOTE = (
    "This reply comes from SafeRouter's built-in demo provider: no model ran and nothing "
    "left this machine. Set DEEPSEEK_API_KEY or ZAI_API_KEY to chat with real models."
)
SHOWN_WORDS = 40  # the prompt or tool result is echoed up to this many words
MAX_CHOICES = 8  # ``n`` beyond this is refused: each choice is a whole stream to send
_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+")


class Finish(enum.Enum):
    """Why a choice ended, in chat completions' words (each API's framing maps them)."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"


class ToolMode(enum.Enum):
    """Whether a tool may (``AUTO``), must (``REQUIRED``) or must not (``NONE``) be called."""

    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"


@attrs.frozen
class DemoTool:
    """A function the client offers: its name and its parameters' JSON Schema."""

    name: str
    schema: object


@attrs.frozen
class ToolResult:
    """A tool's result the conversation ends with (its name when the request says it)."""

    name: str | None
    text: str


@attrs.frozen
class JsonOutput:
    """The answer must be JSON: an object (``schema`` None) or valid for ``schema``."""

    schema: object = None


@attrs.frozen(kw_only=True)
class DemoAsk:
    """What one request asks of the demo, whichever API it came in."""

    model: str
    texts: tuple[str, ...]  # every message's text, for the prompt's count
    last_user: str
    reasoning: bool  # think before answering (reasoning models, or when asked)
    tools: tuple[DemoTool, ...] = ()
    tool_mode: ToolMode = ToolMode.AUTO
    forced_tool: str | None = None  # the tool named by the tool choice
    tool_results: tuple[ToolResult, ...] = ()
    json_output: JsonOutput | None = None
    max_tokens: int | None = None  # per choice, reasoning included
    choices: int = 1

    def unoffered_tool(self) -> str | None:
        """Why the tool choice cannot be honoured (it names a tool not offered), or None."""
        if self.forced_tool is None or any(t.name == self.forced_tool for t in self.tools):
            return None
        return f"tool_choice names {self.forced_tool!r}, which is not in tools"


@attrs.frozen
class DemoCall:
    """One tool call: the tool's name and its JSON arguments in pieces."""

    name: str
    arguments: tuple[str, ...]

    @property
    def tokens(self) -> int:
        """The name's delta counts as one token, then one per argument piece."""
        return 1 + len(self.arguments)


@attrs.frozen
class DemoChoice:
    """One choice: reasoning pieces, then content pieces or a tool call, and its end."""

    index: int
    reasoning: tuple[str, ...]
    content: tuple[str, ...]
    call: DemoCall | None
    finish: Finish

    @property
    def tokens(self) -> int:
        """Every piece sent, reasoning included."""
        called = self.call.tokens if self.call is not None else 0
        return len(self.reasoning) + len(self.content) + called


@attrs.frozen
class DemoReply:
    """The whole reply: its choices and the prompt's token count."""

    prompt_tokens: int
    choices: tuple[DemoChoice, ...]

    @property
    def completion_tokens(self) -> int:
        """What every choice sent, reasoning included (as OpenAI bills ``n``)."""
        return sum(choice.tokens for choice in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        """The reasoning part of :attr:`completion_tokens`."""
        return sum(len(choice.reasoning) for choice in self.choices)


def split_tokens(text: str) -> tuple[str, ...]:
    """``text`` as the demo's tokens: words and runs of punctuation, each with the
    whitespace before it; they join back to ``text``."""
    return tuple(_TOKEN.findall(text))


def answer_to(ask: DemoAsk) -> DemoReply:
    """The demo's reply to ``ask``: the same ask always gets the same reply."""
    call = _chosen_tool(ask)
    choices = tuple(_choice(ask, index, call) for index in range(ask.choices))
    return DemoReply(prompt_tokens=prompt_tokens(ask.texts), choices=choices)


def prompt_tokens(texts: tuple[str, ...]) -> int:
    """The prompt's count: its tokens and three a message (at least one)."""
    return max(sum(len(split_tokens(t)) for t in texts) + 3 * len(texts), 1)


def _chosen_tool(ask: DemoAsk) -> DemoTool | None:
    """The tool to call, or None to answer in text. A forced choice calls its tool
    every time, as a provider does; ``auto`` calls the first tool unless the
    conversation ends with tool results, which get an answer instead — so a client's
    tool loop (call → result → answer) ends."""
    if not ask.tools or ask.tool_mode is ToolMode.NONE:
        return None
    if ask.forced_tool is not None:  # one offered: see DemoAsk.unoffered_tool
        return next((t for t in ask.tools if t.name == ask.forced_tool), ask.tools[0])
    if ask.tool_mode is ToolMode.AUTO and ask.tool_results:
        return None
    return ask.tools[0]


def _choice(ask: DemoAsk, index: int, tool: DemoTool | None) -> DemoChoice:
    reasoning = split_tokens(_reasoning(ask, tool)) if ask.reasoning else ()
    if tool is not None:
        arguments = split_tokens(json.dumps(example_of(tool.schema), ensure_ascii=False))
        return _cut(ask, index, reasoning, (), DemoCall(tool.name, arguments))
    return _cut(ask, index, reasoning, split_tokens(_content(ask, index)), None)


def _cut(
    ask: DemoAsk,
    index: int,
    reasoning: tuple[str, ...],
    content: tuple[str, ...],
    call: DemoCall | None,
) -> DemoChoice:
    """The choice within ``max_tokens``: reasoning first, then the content or the call
    (its name, then its arguments); ``length`` when anything was left out."""
    finish = Finish.TOOL_CALLS if call is not None else Finish.STOP
    budget = ask.max_tokens
    if budget is None or budget >= len(reasoning) + len(content) + (call.tokens if call else 0):
        return DemoChoice(index, reasoning, content, call, finish)
    reasoning, budget = reasoning[:budget], max(budget - len(reasoning), 0)
    content = content[:budget]
    if call is not None:
        call = DemoCall(call.name, call.arguments[: budget - 1]) if budget else None
    return DemoChoice(index, reasoning, content, call, Finish.LENGTH)


def _reasoning(ask: DemoAsk, tool: DemoTool | None) -> str:
    words = len(ask.last_user.split())
    n_texts = len(ask.texts)
    said = (
        f"The user wrote {words} word{'s' if words != 1 else ''} in {n_texts} "
        f"message{'s' if n_texts != 1 else ''}. I am the demo provider, so "
    )
    if tool is not None:
        offered = len(ask.tools)
        return said + (
            f"I call {tool.name} ({offered} tool{'s' if offered != 1 else ''} offered) "
            "with arguments made from its schema."
        )
    if ask.tool_results:
        return said + "I report the tool result I was given."
    if ask.json_output is not None:
        return said + "I answer in JSON, as asked."
    return said + "I echo it back and say where real answers come from."


def _content(ask: DemoAsk, index: int) -> str:
    text = _sentence(ask)
    if ask.choices > 1:
        text = f"Choice {index + 1} of {ask.choices}. {text}"
    if ask.json_output is None:
        return text
    if ask.json_output.schema is None:
        return json.dumps({"answer": text}, ensure_ascii=False)
    return json.dumps(example_of(ask.json_output.schema), ensure_ascii=False)


def _sentence(ask: DemoAsk) -> str:
    if ask.tool_results:
        told = " ".join(
            f'The tool {r.name or "called"} returned: "{_shown(r.text)}".' for r in ask.tool_results
        )
        return f"{told} {NOTE}"
    said = (
        f'You said: "{_shown(ask.last_user)}". ' if ask.last_user.split() else "You sent no text. "
    )
    return said + NOTE


def _shown(text: str) -> str:
    words = text.split()
    return " ".join(words[:SHOWN_WORDS]) + (" …" if len(words) > SHOWN_WORDS else "")
