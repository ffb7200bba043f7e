"""``modelyard routing``: breaker state of deployments, rollouts changed at run time."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.cli.conftest import Invoke, Target

ROLLOUT = """\
providers:
  fake:
    models: [echo, other]
rollouts:
  canary:
    model: fake/other
    percent: 10
"""


def test_status_lists_deployments_and_shared_state(cli: Invoke) -> None:
    cli("prompt", "-m", "fake/echo", "hi")
    result = cli("routing", "status", "--json")
    assert result.exit_code == 0, result.output
    state = orjson.loads(result.stdout)
    assert {"deployments", "groups", "rollouts", "shared_state"} <= set(state)
    table = cli("routing", "status")
    assert table.exit_code == 0 and "shared state:" in table.stdout


def test_rollout_is_changed_and_cleared_at_run_time(cli: Invoke, target: Target, config_dir: Path) -> None:
    (config_dir / "modelyard.yaml").write_text(ROLLOUT)
    changed = cli("routing", "rollout", "canary", "40")
    if not target.remote:  # each CLI process has its own memory: without a server or Redis there is no "run time"
        assert changed.exit_code == 2 and "needs a running server" in changed.stderr
        return
    assert changed.exit_code == 0, changed.output
    assert "now 40%" in changed.stderr
    assert orjson.loads(cli("routing", "status", "--json").stdout)["rollouts"]["canary"]["percent"] == 40
    cleared = cli("routing", "rollout", "canary", "--clear")
    assert "now 10%" in cleared.stderr
    missing = cli("routing", "rollout", "nope", "5")
    assert missing.exit_code == 2 and "no rollout named" in missing.stderr
