"""The admin facade behaves the same in-process and against a live server: one suite, both modes."""

from __future__ import annotations

import csv
import inspect
import io

import orjson
import pytest

from modelyard import errors
from modelyard.providers.fake import FakeReply
from modelyard.sdk.admin import Admin
from modelyard.sdk.admin_local import InProcessAdmin
from modelyard.sdk.admin_remote import RemoteAdmin
from modelyard.sdk.admin_sync import SyncAdmin
from modelyard.storage.base import Conversation, LogQuery
from modelyard.templates import template_from_content
from modelyard.types.usage import Usage
from tests.sdk.conftest import Mode


def _ask(mode: Mode, text: str, model: str = "fake/m", **kwargs: object) -> str:
    mode.fake.queue(FakeReply(text=f"re: {text}", usage=Usage.of(3, 2)))
    response = mode.client.chat(model, [{"role": "user", "content": text}], **kwargs)
    assert response.modelyard is not None
    return response.modelyard.request_id


def test_one_interface_two_implementations_and_a_sync_twin() -> None:
    public = {name for name, _ in inspect.getmembers(Admin, inspect.isfunction) if not name.startswith("_")}
    for implementation in (InProcessAdmin, RemoteAdmin):
        assert issubclass(implementation, Admin) and not inspect.isabstract(implementation)
    for name in public:
        wrapper = getattr(SyncAdmin, name, None)
        assert wrapper is not None, f"SyncAdmin has no {name}"
        assert list(inspect.signature(wrapper).parameters) == list(inspect.signature(getattr(Admin, name)).parameters)


def test_info_database_and_readiness(mode: Mode) -> None:
    admin = mode.client.admin
    info = admin.info()
    assert info.default_model == "local/smollm2" and "fake" in info.providers and info.version
    admin.conversations()  # opens (and migrates) the database
    database = admin.database()
    assert database.up_to_date and database.revision == database.head and "sdk.db" in database.url
    ready = admin.ready()
    assert ready.checks["database"] == "ok" and ready.checks["log_writer"] == "ok"


def test_logs_query_get_count_search_and_feedback(mode: Mode) -> None:
    first = _ask(mode, "apples and pears", tags=["fruit"])
    _ask(mode, "bananas", model="fake/other")
    admin = mode.client.admin
    page = admin.logs()
    assert [log.requested_model for log in page.items] == ["fake/other", "fake/m"]
    assert [log.request_id for log in admin.logs(LogQuery(tag="fruit")).items] == [first]
    assert admin.count_logs() == 2 and admin.count_logs(LogQuery(model="fake/other")) == 1
    assert [log.request_id for log in admin.search_logs("pears").items] == [first]
    assert admin.search_logs("pears", LogQuery(model="fake/other")).items == []
    log = admin.log(first)
    assert log is not None and log.prompt_tokens == 3 and log.tags == ["fruit"]
    assert admin.log("req_missing") is None
    assert admin.set_feedback(first, "good") and admin.log(first).feedback == "good"  # type: ignore[union-attr]
    assert admin.set_feedback("req_missing", "bad") is False
    assert len(admin.logs(LogQuery(limit=1)).items) == 1


def test_export_streams_records_in_jsonl_and_csv(mode: Mode) -> None:
    awkward = 'line one\nline "two", quoted'
    _ask(mode, awkward)
    _ask(mode, "plain")
    admin = mode.client.admin
    lines = list(admin.export_logs())
    assert len(lines) == 2 and all(line.endswith("\n") for line in lines)
    assert [orjson.loads(line)["prompt_text"] for line in lines] == ["plain", awkward]
    records = list(admin.export_logs(LogQuery(model="fake/m"), "csv"))
    assert len(records) == 3  # a header and one record per request, a quoted newline inside one
    rows = list(csv.DictReader(io.StringIO("".join(records))))
    assert [row["prompt_text"] for row in rows] == ["plain", awkward]
    for _ in admin.export_logs():  # stopping early closes the export
        break
    assert admin.count_logs() == 2


def test_cost_grouped_and_filtered(mode: Mode) -> None:
    conversation = mode.client.create_conversation(title="costed")
    _ask(mode, "one", conversation_id=conversation.id)
    _ask(mode, "two", model="fake/other", tags=["t"])
    admin = mode.client.admin
    by_model = {row.key: row.requests for row in admin.cost("model")}
    assert by_model == {"fake/m": 1, "fake/other": 1}
    assert [(r.key, r.prompt_tokens) for r in admin.cost("tag")] == [("t", 3)]
    where = LogQuery(conversation_id=conversation.id)
    assert [(r.key, r.requests) for r in admin.cost("model", where=where)] == [("fake/m", 1)]
    assert [r.key for r in admin.cost("caller")] == ["local"]
    from datetime import UTC, datetime

    assert admin.cost("model", since=datetime(2999, 1, 1, tzinfo=UTC)) == []


def test_conversations(mode: Mode) -> None:
    admin = mode.client.admin
    created = admin.create_conversation(Conversation(title="trip", model="fake/m", system_prompt="Be brief."))
    exchange = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    assert admin.append_messages(created.id, exchange) == 2
    assert admin.append_messages(created.id, [{"role": "user", "content": "again"}]) == 3
    listed = admin.conversations()
    assert [c.id for c in listed] == [created.id] and listed[0].message_count == 3
    updated = admin.update_conversation(created.id, title="renamed", metadata={"k": 1}, system_prompt=None)
    assert updated is not None and updated.title == "renamed" and updated.system_prompt is None
    assert admin.rename_conversation(created.id, "again renamed")
    assert admin.replace_messages(created.id, [{"role": "user", "content": "only"}])
    found = admin.conversation(created.id)
    assert found is not None and found.title == "again renamed" and [m.text() for m in found.messages] == ["only"]
    forked = admin.fork_conversation(created.id, 0, title="copy")
    assert forked is not None and forked.title == "copy" and forked.forked_from == created.id
    assert admin.delete_conversation(created.id) and admin.conversation(created.id) is None
    assert [c.id for c in admin.conversations(limit=5, offset=0)] == [forked.id]
    assert admin.conversations(limit=5, offset=1) == []
    assert admin.delete_conversation(created.id) is False
    assert admin.update_conversation("conv_missing", title="x") is None
    assert admin.fork_conversation("conv_missing", 0) is None
    assert admin.replace_messages("conv_missing", []) is False
    assert admin.rename_conversation("conv_missing", "x") is False
    with pytest.raises(errors.NotFoundError):
        admin.append_messages("conv_missing", [{"role": "user", "content": "x"}])
    with pytest.raises(errors.BadRequestError, match="cannot update conversation fields: id"):
        admin.update_conversation(forked.id, id="conv_other")


def test_system_prompts(mode: Mode) -> None:
    admin = mode.client.admin
    created = admin.create_system_prompt("terse", "Be terse.")
    assert [p.name for p in admin.system_prompts()] == ["terse"]
    by_name, by_id = admin.system_prompt("terse"), admin.system_prompt(created.id)
    assert by_name is not None and by_id is not None and by_name.id == by_id.id == created.id
    updated = admin.update_system_prompt(created.id, text="Be very terse.")
    assert updated is not None and updated.text == "Be very terse." and updated.name == "terse"
    assert admin.delete_system_prompt(created.id) and admin.system_prompts() == []
    assert admin.system_prompt("terse") is None
    assert admin.update_system_prompt(created.id, name="x") is None
    assert admin.delete_system_prompt(created.id) is False


def test_templates(mode: Mode) -> None:
    admin = mode.client.admin
    assert {"commit", "reviewer"} <= {t.name for t in admin.templates()}
    template = template_from_content({"prompt": "Sum up {{ input }}", "model": "fake/m"}, name="sumup", origin="user")
    where = admin.save_template(template)
    assert ("database" in where) is mode.remote and (where.endswith("sumup.yaml")) is not mode.remote
    found = admin.template("sumup")
    assert found.prompt == "Sum up {{ input }}" and found.origin == ("db" if mode.remote else "user")
    with pytest.raises(errors.BadRequestError, match="already exists"):
        admin.save_template(template)
    changed = template.model_copy(update={"prompt": "Summarise {{ input }}"})
    admin.save_template(changed, overwrite=True)
    assert admin.template("sumup").prompt == "Summarise {{ input }}"
    assert "sumup" in {t.name for t in admin.templates()}
    with pytest.raises(errors.NotFoundError, match="did you mean 'sumup'"):
        admin.template("sumpu")
    assert admin.delete_template("sumup") and admin.delete_template("sumup") is False
    assert admin.delete_template("commit") is False  # built-ins stay


def test_keys(mode: Mode) -> None:
    admin = mode.client.admin
    key, plaintext = admin.create_key("ci", allowed_models=["fake/m"], rpm=60, budget=5.0, created_by="tests")
    assert plaintext.startswith("sk-my-") and plaintext.startswith(key.prefix)
    assert key.allowed_models == ["fake/m"] and key.rpm == 60 and key.budget == 5.0 and key.created_by == "tests"
    active = admin.keys()
    assert [k.id for k in active] == [key.id]
    assert admin.revoke_key(key.id) and admin.revoke_key(key.id) is False
    everything = admin.keys(include_revoked=True)
    assert admin.keys() == [] and [k.id for k in everything] == [key.id]
    assert admin.revoke_key("vk_missing") is False
