from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from modelyard.config import config_dir
from modelyard.errors import BadRequestError, NotFoundError
from modelyard.storage.base import StoredTemplate
from modelyard.templates import PromptTemplate, TemplateLibrary, TemplateRecordLike, TemplateSource

BUILTINS = ["commit", "planner", "refactor", "reviewer", "synthesizer", "test"]


class DictSource:
    """A tiny ``TemplateSource``: records shaped like the storage layer's ``StoredTemplate``, or plain dicts."""

    def __init__(self, records: Mapping[str, TemplateRecordLike]) -> None:
        self.records = dict(records)

    async def get_template(self, name: str) -> TemplateRecordLike | None:
        return self.records.get(name)

    async def list_templates(self) -> Sequence[TemplateRecordLike]:
        return list(self.records.values())


def user_templates() -> Path:
    folder = config_dir() / "templates"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def make(prompt: str = "", **fields: Any) -> PromptTemplate:
    return PromptTemplate(name="t", prompt=prompt, **fields)


# built-ins


async def test_builtins_are_listed() -> None:
    templates = await TemplateLibrary().list()
    assert [t.name for t in templates] == BUILTINS
    assert {t.origin for t in templates} == {"builtin"}
    assert all(t.description and t.system for t in templates)


@pytest.mark.parametrize("name", BUILTINS)
async def test_every_builtin_loads_and_renders(name: str) -> None:
    template = await TemplateLibrary().get(name)
    assert template.origin == "builtin"
    assert "input" in template.variables()
    required = {v: f"<{v}>" for v in template.variables() if v not in template.defaults and v != "input"}
    rendered = template.render(required, input="PIPED-INPUT")
    assert [m.role for m in rendered.messages] == ["system", "user"]
    assert rendered.prompt.count("PIPED-INPUT") == 1
    for message in rendered.messages:
        assert "{{" not in message.text() and "{%" not in message.text()
    for value in required.values():
        assert value in (rendered.system or "") + rendered.prompt


async def test_builtin_defaults_and_overrides() -> None:
    template = await TemplateLibrary().get("test")
    assert template.defaults["framework"] == "pytest"
    assert "Write pytest tests" in (template.render(input="def f(): ...").system or "")
    assert "Write unittest tests" in (template.render({"framework": "unittest"}, input="x").system or "")
    assert "Import the code under test" not in (template.render(input="x").system or "")
    assert "from `pkg.mod`" in (template.render({"module": "pkg.mod"}, input="x").system or "")


async def test_commit_template_asks_for_a_conventional_message() -> None:
    rendered = (await TemplateLibrary().get("commit")).render(input="diff --git a/x b/x")
    assert "72 characters" in (rendered.system or "")
    assert rendered.prompt.endswith("diff --git a/x b/x")


async def test_synthesizer_needs_a_question() -> None:
    template = await TemplateLibrary().get("synthesizer")
    with pytest.raises(BadRequestError, match="question"):
        template.render(input="answers")


# variables, defaults, input


def test_variables_in_order_of_first_use() -> None:
    template = make(
        "{{ b }} {{ c | upper }} {% for x in items %}{{ x }}{{ loop.index }}{% endfor %}"
        "{% set local = 1 %}{{ local }}{% for i in range(3) %}{{ i }}{% endfor %}",
        system="{{ a }} and {{ b }}",
    )
    assert template.variables() == ["a", "b", "c", "items"]


def test_defaults_are_applied_and_values_win() -> None:
    template = make("Hello {{ who }}, from {{ me }}", defaults={"who": "world", "me": "yard"})
    assert template.render().prompt == "Hello world, from yard"
    assert template.render({"who": "you"}).prompt == "Hello you, from yard"


def test_yaml_scalar_defaults_become_text() -> None:
    template = PromptTemplate.from_yaml("name: n\nprompt: '{{ a }} {{ b }} {{ c }}'\ndefaults: {a: 3, b: true, c:}\n")
    assert template.defaults == {"a": "3", "b": "true", "c": ""}
    assert template.render().prompt == "3 true"


def test_missing_variables_are_all_named() -> None:
    template = make("{{ a }} {{ b }} {{ c }}", system="{{ z }}", defaults={"b": "B"})
    with pytest.raises(BadRequestError) as info:
        template.render({})
    assert info.value.param == "variables"
    assert info.value.code == "missing_variables"
    assert "z, a, c" in str(info.value)
    assert "b" not in str(info.value).split(":")[-1]


def test_input_is_appended_when_not_referenced() -> None:
    assert make("Summarize this.").render(input="some text").prompt == "Summarize this.\n\nsome text"
    assert make("Summarize this.").render({"input": "via values"}).prompt == "Summarize this.\n\nvia values"
    assert make("Summarize this.").render().prompt == "Summarize this."


def test_input_fills_its_variable_once() -> None:
    rendered = make("Before\n{{ input }}\nAfter").render(input="X")
    assert rendered.prompt == "Before\nX\nAfter"
    assert make("{{ q }}", system="Context: {{ input }}").render({"q": "Q"}, input="I").prompt == "Q"


def test_input_is_not_itself_a_template() -> None:
    assert make("{{ input }}").render(input="{{ secret }} {% raw %}").prompt == "{{ secret }} {% raw %}"


def test_template_without_prompt_uses_the_input() -> None:
    template = make(system="You are terse.")
    rendered = template.render(input="hi")
    assert [(m.role, m.text()) for m in rendered.messages] == [("system", "You are terse."), ("user", "hi")]
    with pytest.raises(BadRequestError, match="input"):
        template.render()


def test_model_and_params_are_suggested() -> None:
    rendered = make("x", model="openai/gpt-4o-mini", params={"temperature": 0.1}).render()
    assert rendered.model == "openai/gpt-4o-mini"
    assert rendered.params == {"temperature": 0.1}
    assert rendered.template == "t"
    assert rendered.system is None


# errors


def test_syntax_error_names_the_template() -> None:
    with pytest.raises(BadRequestError, match="'broken'") as info:
        PromptTemplate(name="broken", prompt="{{ a ").render({"a": "x"})
    assert info.value.code == "template_syntax_error"


def test_unknown_keys_and_bad_names_are_rejected() -> None:
    with pytest.raises(BadRequestError, match="promt"):
        PromptTemplate.from_yaml("name: n\npromt: typo\n")
    with pytest.raises(BadRequestError):
        PromptTemplate.from_yaml("name: ../escape\nprompt: x\n")
    with pytest.raises(BadRequestError, match="mapping"):
        PromptTemplate.from_yaml("- a list\n")


async def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(NotFoundError, match="did you mean 'planner'") as info:
        await TemplateLibrary().get("planer")
    assert info.value.code == "template_not_found"
    with pytest.raises(NotFoundError):
        await TemplateLibrary().get("../../etc/passwd")


# sandbox

ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.system('echo pwned') }}",
    "{{ joiner.__init__.__globals__['os'] }}",
    "{{ namespace.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__self__ }}",
    "{{ [].append(1) }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_cannot_reach_os(source: str) -> None:
    with pytest.raises(BadRequestError) as info:
        make(source).render()
    assert isinstance(info.value.__cause__, SecurityError | UndefinedError)  # refused, never evaluated
    assert "<module" not in str(info.value) and "posix" not in str(info.value)


def test_sandbox_errors_from_values_too() -> None:
    with pytest.raises(BadRequestError):
        make("{{ x.__class__ }}").render({"x": "text"})


# library: folders, database, precedence


async def test_user_folder_beats_builtin() -> None:
    (user_templates() / "planner.yaml").write_text(
        "name: planner\ndescription: mine\nprompt: My plan for {{ input }}\n"
    )
    library = TemplateLibrary()
    template = await library.get("planner")
    assert (template.origin, template.description) == ("user", "mine")
    listed = {t.name: t for t in await library.list()}
    assert listed["planner"].origin == "user" and listed["commit"].origin == "builtin"
    assert len(listed) == len(BUILTINS)


async def test_user_file_name_is_the_template_name() -> None:
    (user_templates() / "mine.yaml").write_text("name: planner\nprompt: x\n")
    assert (await TemplateLibrary().get("mine")).name == "mine"
    assert (await TemplateLibrary().get("planner")).origin == "builtin"


async def test_database_beats_user_folder_and_builtin() -> None:
    (user_templates() / "planner.yaml").write_text("prompt: user version\n")
    (user_templates() / "extra.yaml").write_text("prompt: user extra\n")
    source = DictSource(
        {
            "planner": StoredTemplate(name="planner", yaml="prompt: db version {{ who }}\ndefaults: {who: me}\n"),
            "dbonly": {"name": "dbonly", "prompt": "from a dict"},
        }
    )
    library = TemplateLibrary(source=source)
    planner = await library.get("planner")
    assert planner.origin == "db" and planner.render().prompt == "db version me"
    assert (await library.get("dbonly")).render().prompt == "from a dict"
    assert (await library.get("extra")).origin == "user"
    origins = {t.name: t.origin for t in await library.list()}
    assert origins == {**dict.fromkeys(BUILTINS, "builtin"), "planner": "db", "dbonly": "db", "extra": "user"}


def test_dict_source_fits_the_protocol() -> None:
    source: TemplateSource = DictSource({})
    assert source is not None


async def test_broken_template_fails_on_get_and_is_skipped_in_list(caplog: pytest.LogCaptureFixture) -> None:
    (user_templates() / "bad.yaml").write_text("prompt: '{{ nope '\n")
    (user_templates() / "worse.yaml").write_text("prompt: [unclosed\n")
    library = TemplateLibrary()
    with pytest.raises(BadRequestError, match="'bad'"):
        await library.get("bad")
    with pytest.raises(BadRequestError, match="YAML"):
        await library.get("worse")
    with caplog.at_level(logging.WARNING, logger="modelyard.templates"):
        names = [t.name for t in await library.list()]
    assert names == BUILTINS
    assert "bad" in caplog.text and "worse" in caplog.text


async def test_save_user_round_trips() -> None:
    template = PromptTemplate(
        name="summary",
        description="Summarize",
        system="Be brief.\nUse bullets.",
        prompt="Summarize for {{ who }}:\n\n{{ input }}",
        defaults={"who": "me"},
        params={"temperature": 0.3},
    )
    library = TemplateLibrary()
    path = library.save_user(template)
    assert path == config_dir() / "templates" / "summary.yaml"
    assert "system: |" in path.read_text()
    loaded = await library.get("summary")
    assert loaded.origin == "user"
    assert loaded.model_dump(exclude={"origin"}) == template.model_dump(exclude={"origin"})
    with pytest.raises(BadRequestError, match="already exists"):
        library.save_user(template)
    library.save_user(template.model_copy(update={"description": "v2"}), overwrite=True)
    assert (await library.get("summary")).description == "v2"
    assert not list(path.parent.glob(".*.tmp"))


async def test_user_dir_can_be_given(tmp_path: Path) -> None:
    library = TemplateLibrary(user_dir=tmp_path)
    library.save_user(PromptTemplate(name="here", prompt="x"))
    assert (tmp_path / "here.yaml").is_file()
    assert (await library.get("here")).origin == "user"
