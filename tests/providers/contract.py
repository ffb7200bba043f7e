"""The provider contract: every adapter answers the same scripted scenarios the same way.

Each adapter ships a ``cases_<name>.py`` module here with ``CASES: ProviderCases`` built from recorded, scrubbed
fixtures of that provider's documented wire format. ``test_contract.py`` runs every adapter through them.
The canonical answers: text ``"Hello there!"``, usage 10 prompt / 3 completion tokens, finish ``stop``;
the tool call is ``get_weather({"city": "Paris"})`` with finish ``tool_calls``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard import errors
from tests.support.scripted_server import Reply

TEXT = "Hello there!"
PROMPT_TOKENS = 10
COMPLETION_TOKENS = 3
TOOL_NAME = "get_weather"
TOOL_ARGS = {"city": "Paris"}


@dataclass
class ProviderCases:
    provider: str  # the preset row name
    model: str  # upstream model name used in the fixtures
    plain: Reply
    stream: Reply
    tool_call: Reply
    tool_call_stream: Reply
    truncated_stream: Reply  # closes cleanly before the provider's end-of-stream marker
    errors: dict[type[errors.ModelyardError], Reply] = field(default_factory=dict)
    base_url_suffix: str = ""  # appended to the scripted server's URL to form the row's base_url
