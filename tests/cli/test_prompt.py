"""``modelyard prompt``: streaming, stdin, JSON, reasoning, templates, conversations, errors, the local model."""

from __future__ import annotations

import importlib.util

import orjson
import pytest

from modelyard.errors import NotFoundError
from modelyard.providers.fake import FakeReply
from modelyard.sdk.sync import Client
from tests.cli.conftest import Invoke, Target, conversation_id


def test_streams_the_answer_and_prints_usage_and_cost(cli: Invoke, target: Target) -> None:
    result = cli("prompt", "-m", "fake/echo", "hello there", "-u")
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello there\n"
    cost = ", cost $0"
    assert f"usage: 2 prompt + 2 completion tokens{cost} via fake/echo" in result.stderr
    assert "conversation conv_" in result.stderr


def test_reads_stdin_when_piped_and_joins_it_to_the_argument(cli: Invoke) -> None:
    result = cli("prompt", "-m", "fake/echo", "summarise:", input="piped text\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "summarise:\n\npiped text\n\n"


def test_json_prints_the_whole_response(cli: Invoke) -> None:
    result = cli("prompt", "-m", "fake/echo", "hi", "--json")
    assert result.exit_code == 0, result.output
    body = orjson.loads(result.stdout)
    assert body["choices"][0]["message"]["content"] == "hi"
    assert body["modelyard"]["served_model"] == "fake/echo"
    assert body["usage"]["total_tokens"] == 2


def test_reasoning_goes_to_stderr_apart_from_the_answer(cli: Invoke, fake_replies: list[FakeReply]) -> None:
    fake_replies.append(FakeReply(text="the answer", reasoning="thinking hard"))
    streamed = cli("prompt", "-m", "fake/r", "q")
    assert streamed.stdout == "the answer\n"
    assert "thinking hard" in streamed.stderr
    fake_replies[:] = [FakeReply(text="again", reasoning="hm")]  # each CLI run opens a client with this queue
    whole = cli("prompt", "-m", "fake/r", "q", "--no-stream")
    assert (whole.stdout, whole.stderr.strip()) == ("again\n", "hm")


def test_options_become_model_parameters(cli: Invoke, client: Client) -> None:
    result = cli("prompt", "-m", "fake/echo", "hi", "-o", "temperature=0.5", "-o", "max_tokens=7", "-u")
    assert result.exit_code == 0, result.output
    logs = cli("logs", "list", "--json")
    assert orjson.loads(logs.stdout)[0]["params"] == {"temperature": 0.5, "max_tokens": 7}


def test_every_prompt_is_saved_and_dash_c_continues_the_latest(cli: Invoke, client: Client) -> None:
    first = conversation_id(cli("prompt", "-m", "fake/echo", "one", "-u").stderr)
    second = conversation_id(cli("prompt", "-m", "fake/echo", "two", "-u").stderr)
    assert first != second
    continued = cli("prompt", "-c", "three", "-u")  # the conversation's model is reused
    assert conversation_id(continued.stderr) == second
    assert "via fake/echo" in continued.stderr
    by_id = cli("prompt", "--cid", first, "four", "-u")
    assert conversation_id(by_id.stderr) == first
    saved = client.conversation(second)
    assert saved is not None and [m.text() for m in saved.messages] == ["two", "two", "three", "three"]
    assert saved.title == "two"


def test_unknown_conversation_is_a_usage_error(cli: Invoke) -> None:
    result = cli("prompt", "-m", "fake/echo", "--cid", "conv_nope", "hi")
    assert result.exit_code == 2
    assert "no conversation 'conv_nope'" in result.stderr


def test_template_with_variables_and_stdin(cli: Invoke) -> None:
    created = cli("templates", "new", "greet", "-p", "Say hi to {{ name }} about: {{ input }}", "-s", "Be brief.")
    assert created.exit_code == 0, created.output
    result = cli("prompt", "-m", "fake/echo", "-t", "greet", "-v", "name=Ada", input="engines")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Say hi to Ada about: engines\n"


def test_builtin_template_fills_input_from_stdin(cli: Invoke) -> None:
    result = cli("prompt", "-m", "fake/echo", "-t", "commit", input="diff --git a/x b/x\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Write the commit message for this diff:")
    assert "diff --git a/x b/x" in result.stdout


def test_missing_template_variable_and_unknown_template(cli: Invoke) -> None:
    cli("templates", "new", "needs", "-p", "Hello {{ who }}")
    missing = cli("prompt", "-m", "fake/echo", "-t", "needs")
    assert missing.exit_code == 2 and "needs a value for: who" in missing.stderr
    unknown = cli("prompt", "-m", "fake/echo", "-t", "comit", "x")
    assert unknown.exit_code == 2 and "did you mean 'commit'" in unknown.stderr


def test_no_prompt_is_a_usage_error(cli: Invoke) -> None:
    result = cli("prompt", "-m", "fake/echo")
    assert result.exit_code == 2
    assert "give a prompt" in result.output


def test_unknown_model_suggests_close_names(cli: Invoke) -> None:
    provider = cli("prompt", "-m", "fakee/echo", "hi")
    assert provider.exit_code == 2
    assert provider.stderr.count("\n") == 1, "one readable line"
    assert "did you mean fake/echo" in provider.stderr
    bare = cli("prompt", "-m", "fake", "hi")
    assert bare.exit_code == 2 and "fake/echo" in bare.stderr
    assert "Traceback" not in provider.output + bare.output


def test_missing_key_names_its_variable(cli: Invoke) -> None:
    result = cli("prompt", "-m", "openai/gpt-4o-mini", "hi")
    assert result.exit_code == 3
    assert "OPENAI_API_KEY" in result.stderr
    assert "Traceback" not in result.output


def test_provider_errors_exit_4(cli: Invoke, fake_replies: list[FakeReply]) -> None:
    from modelyard.errors import ServiceUnavailableError

    fake_replies.append(FakeReply(error=ServiceUnavailableError("upstream down")))
    result = cli("prompt", "-m", "fake/echo", "hi", env={"MODELYARD_MAX_RETRIES": "0"})
    assert result.exit_code == 4
    assert "upstream down" in result.stderr


def test_debug_shows_the_exception(cli: Invoke) -> None:
    result = cli("--debug", "prompt", "-m", "fake/x/../nope", "--cid", "conv_missing", "hi")
    assert isinstance(result.exception, NotFoundError)


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_real_local_model_answers(local_cli: Invoke) -> None:  # in-process only: loading it takes seconds
    result = local_cli("prompt", "-m", "local/smollm2", "-o", "max_tokens=4", "-o", "temperature=0", "Say hi", "-u")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
    assert "via local/smollm2" in result.stderr
    assert "completion tokens" in result.stderr


def test_a_failed_first_prompt_leaves_no_empty_conversation(cli: Invoke) -> None:
    assert cli("prompt", "-m", "fake/echo", "kept", "-u").exit_code == 0
    assert cli("prompt", "-m", "nope/x", "lost").exit_code == 2
    continued = cli("prompt", "-c", "again", "-u")
    assert continued.exit_code == 0, continued.output
    assert "via fake/echo" in continued.stderr
