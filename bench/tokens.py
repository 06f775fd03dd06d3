"""Token counts as a model meets them: OpenAI's o200k_base encoding.

From `bpe-openai`, whose tables ship inside the wheel, so it counts offline (`tiktoken`
downloads its tables at run time and fails without the internet).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import bpe_openai


@cache
def _o200k() -> bpe_openai.Encoding:
    return bpe_openai.get_encoding("o200k_base")


def count_tokens(text: str) -> int:
    """Tokens in `text` under o200k_base."""
    return len(_o200k().encode(text))


def count_json_tokens(value: Any) -> int:
    """Tokens in `value` serialised compactly, as a client passes JSON on to a model."""
    return count_tokens(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
