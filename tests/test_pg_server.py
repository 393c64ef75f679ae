"""The PostgreSQL the tests use: missing programs fail the tests, loudly."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg

from tests.conftest import ROOT
from tests.pg_server import BINDIR_VARIABLE, INSTALL_HINT


def test_without_postgres_programs_the_postgres_tests_fail_saying_how_to_install(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_TEST_URL"}
    env[BINDIR_VARIABLE] = str(tmp_path / "no-postgres-here")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:randomly",
            "-p",
            "no:xdist",
            "-x",
            "tests/store_contract/test_quota_audit_drafts.py",
            "-k",
            "quota_units and postgres",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout  # failed, not skipped
    assert "1 error" in result.stdout
    assert INSTALL_HINT.split(":")[0] in " ".join(result.stdout.split())
    assert "apt-get install -y postgresql" in result.stdout


def test_the_server_syncs_every_commit_to_disk(pg_url):
    """What the durability promises of the store rest on."""
    with psycopg.connect(pg_url) as conn:
        settings = dict(
            conn.execute(
                "select name, setting from pg_settings "
                "where name in ('fsync', 'synchronous_commit', 'full_page_writes')"
            ).fetchall()
        )
    assert settings == {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
