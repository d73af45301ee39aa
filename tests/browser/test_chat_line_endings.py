"""Text with CRLF line breaks on the chat page (atk-pages on issue 16): an answer from an
upstream that ends its lines with "\\r\\n", and a conversation stored so, are shown like
the same text with "\\n" — no blank first line in a code block, no stray fence break —
and as text, never markup. In real Chromium against a real `saferouter serve`."""

from __future__ import annotations

import json

from playwright.sync_api import expect

from .conftest import Watched

CRLF = (
    "first\r\nsecond\r\n```js\r\n</code><script>window.__x=1</script>\r\nlet a = 1;\r\n```\r\nafter"
)
CODE = "</code><script>window.__x=1</script>\nlet a = 1;"


def test_crlf_text_reads_like_lf_text(page: Watched) -> None:
    p = page.page
    conversation = {
        "id": "crlf",
        "title": "CRLF",
        "model": "demo",
        "messages": [
            {"role": "user", "content": CRLF},
            {"role": "assistant", "content": CRLF, "model": "demo", "done": True},
        ],
    }
    p.goto("/")
    p.evaluate(
        "c => localStorage.setItem('saferouter.conversations', JSON.stringify([c]))",
        conversation,
    )
    p.goto("/chat")
    user, answer = p.locator(".message.user"), p.locator(".message.assistant")
    expect(user).to_have_count(1)
    assert user.locator("pre code").inner_text().rstrip("\n") == CODE  # as with LF
    assert answer.locator("pre code").inner_text().rstrip("\n") == CODE
    assert [t.strip("\n") for t in user.locator(".typed").all_inner_texts()] == [
        "first\nsecond",
        "after",
    ]
    assert answer.locator("p").all_inner_texts() == ["first", "second", "after"]
    assert p.evaluate("() => window.__x") is None
    assert p.locator(".message script").count() == 0
    assert json.loads(p.evaluate("() => localStorage.getItem('saferouter.conversations')"))
    assert page.errors == []
