"""The operator's command line, end to end against the backend under test."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from omnicloud.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(backend: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OMNICLOUD_DATABASE_URL", backend.settings.database_url)
    monkeypatch.setenv("OMNICLOUD_MIGRATION_DATABASE_URL", backend.owner_url)
    monkeypatch.delenv("OMNICLOUD_REDIS_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, (args, result.output, result.stderr if result.stderr_bytes else "")
        return result

    return invoke


def test_db_commands(cli):
    cli("db", "upgrade")
    current = cli("db", "current").output
    assert current.strip()
    assert "up to date" in cli("db", "pending").output


def test_tenant_lifecycle(cli):
    created = json.loads(
        cli(
            "tenants",
            "create",
            "cli-acme",
            "--name",
            "Acme",
            "--admin-email",
            "a@acme.example",
            "--plugin",
            "industry_jewelry",
        ).output
    )
    assert created["admin_api_key"].startswith("ock_")
    assert created["tenant"]["plugins"] == ["industry_jewelry"]
    listed = json.loads(cli("tenants", "list", "--json").output)
    assert "cli-acme" in [t["slug"] for t in listed]
    assert (
        json.loads(cli("tenants", "suspend", "cli-acme", "--reason", "unpaid").output)["status"]
        == "suspended"
    )
    assert json.loads(cli("tenants", "resume", "cli-acme").output)["status"] == "active"
    cli("tenants", "purge", "cli-acme", code=2)  # only a deleted tenant can be purged
    assert json.loads(cli("tenants", "delete", "cli-acme").output)["status"] == "deleted"
    assert json.loads(cli("tenants", "restore", "cli-acme").output)["status"] == "active"
    cli("tenants", "delete", "cli-acme")
    cli("tenants", "purge", "cli-acme")
    cli("tenants", "show", "cli-acme", code=2)
    dup = cli("tenants", "create", "cli-dup", "--name", "D", "--admin-email", "d@d.example")
    assert dup.exit_code == 0
    assert (
        "tenant_exists"
        in cli("tenants", "create", "cli-dup", "--name", "D", "--admin-email", "d@d.example", code=2).output
    )


def test_apply_is_idempotent_and_broken_manifests_apply_nothing(cli, tmp_path):
    manifests = tmp_path / "tenants"
    shutil.copytree(REPO / "tenants", manifests)
    for f in manifests.glob("*.toml"):  # fresh slugs: the demo may already have applied the originals
        f.write_text(f.read_text().replace('slug = "', 'slug = "cli-', 1))
    broken = tmp_path / "broken"
    shutil.copytree(manifests, broken)
    target = next(broken.glob("goldleaf.toml"))
    target.write_text(target.read_text().replace("lock_minutes = 10", "lock_minutes = 0"))
    out = cli("tenants", "apply", str(broken), code=2).output
    assert "goldleaf.toml" in out and "plugins.industry_jewelry.lock_minutes" in out
    slugs = [t["slug"] for t in json.loads(cli("tenants", "list", "--json").output)]
    assert "cli-goldleaf" not in slugs and "cli-qingshan" not in slugs

    first = cli("tenants", "apply", str(manifests)).output
    assert "cli-goldleaf: created" in first and "cli-qingshan: created" in first
    second = cli("tenants", "apply", str(manifests)).output
    assert "cli-goldleaf: up to date" in second and "cli-qingshan: up to date" in second

    plugins = json.loads(cli("plugins", "list", "--json").output)
    jewelry = next(p for p in plugins if p["name"] == "industry_jewelry")
    assert jewelry["tenants_enabled"] >= 1 and "resolve_unit_price" in jewelry["hooks"]


def test_bad_seed_reference_names_file_and_field(cli, tmp_path):
    manifests = tmp_path / "t"
    manifests.mkdir()
    (manifests / "bad.toml").write_text(
        'slug = "cli-badseed"\nname = "B"\n[admin]\nemail = "a@b.example"\n'
        '[[seed.products]]\ncode = "P1"\nname = "P"\nbase_unit_code = "nope"\n'
    )
    out = cli("tenants", "apply", str(manifests), code=2).output
    assert "bad.toml" in out and "seed.products[0]" in out
    slugs = [t["slug"] for t in json.loads(cli("tenants", "list", "--json").output)]
    assert "cli-badseed" not in slugs
