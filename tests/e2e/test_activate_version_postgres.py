"""ACTIVATE_VERSION end to end: target-postgres drops or soft-deletes what disappeared.

Split from tests/unit/test_activate_version.py (the in-process half): these runs load into
PostgreSQL (the ``postgres_dsn`` fixture) with target-postgres.
"""

from __future__ import annotations

import dataclasses
import os
import time
import typing as t

import pytest

from nylas_simulator import NylasSimulator
from tests.support import run_sync
from tests.support.target_postgres import connect, load


class Warehouse:
    """A simulator and a fresh PostgreSQL schema; runs the tap into target-postgres."""

    def __init__(self, sim: NylasSimulator, dsn: str, hard_delete: bool) -> None:
        self.sim, self.dsn, self.hard_delete = sim, dsn, hard_delete
        self.schema = f"versions_{hard_delete}_{os.getpid()}_{int(time.time() * 1000)}".lower()
        self.conn = connect(dsn)
        self.config = {
            "api_key": "k",
            "api_url": sim.url,
            "start_date": "2024-01-01T00:00:00Z",
            "emit_activate_version_messages": True,
        }

    def run(self, **config: t.Any) -> None:
        result = run_sync({**self.config, **config}, streams=["grants", "folders", "contacts"])
        load(
            result.raw.split("\n"),
            self.dsn,
            self.schema,
            activate_version=True,
            hard_delete=self.hard_delete,
        )

    def live(self, table: str) -> set[tuple[str, str]]:
        deleted = "" if self.hard_delete else " WHERE _sdc_deleted_at IS NULL"
        sql = f'SELECT grant_id, id FROM "{self.schema}".{table}{deleted}'  # noqa: S608
        return set(self.conn.execute(sql).fetchall())

    def all_rows(self, table: str) -> set[tuple[str, str]]:
        sql = f'SELECT grant_id, id FROM "{self.schema}".{table}'  # noqa: S608
        return set(self.conn.execute(sql).fetchall())

    def close(self) -> None:
        self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()


@pytest.mark.parametrize("hard_delete", [True, False], ids=["hard_delete", "soft_delete"])
def test_rows_gone_from_nylas_leave_the_table_only_after_complete_runs(
    postgres_dsn: str, hard_delete: bool
) -> None:
    # four valid grants, none expired: a plain run reads everything
    with NylasSimulator(seed=7, grants=4, records_per_grant=6, api_key="k") as sim:
        assert all(p.serving for p in sim.grants)
        warehouse = Warehouse(sim, postgres_dsn, hard_delete)
        try:
            warehouse.run()
            truth = {(r["grant_id"], r["id"]) for r in sim.records("folders")}
            assert warehouse.live("folders") == truth
            grants = [p for p in sim.grants if sim.dataset.grant_data(p).folders]
            first, other = grants[0], grants[1]

            # a folder deleted in Nylas, seen by a run restricted to another grant: kept
            gone = sim.dataset.grant_data(first).folders.pop()
            assert (first.id, gone["id"]) in truth
            warehouse.run(grant_ids=[other.id])
            assert warehouse.live("folders") == truth

            # ... and by a run where one grant failed (expired since listing): kept
            index = sim.dataset.profiles.index(other)
            sim.dataset.profiles[index] = dataclasses.replace(other, expired=True)
            warehouse.run()
            assert warehouse.live("folders") == truth
            sim.dataset.profiles[index] = other

            # a complete run: the deleted folder leaves, every other row stays
            warehouse.run()
            assert warehouse.live("folders") == truth - {(first.id, gone["id"])}
            contacts = {(r["grant_id"], r["id"]) for r in sim.records("contacts")}
            assert warehouse.live("contacts") == contacts
            if not hard_delete:  # soft delete: the row stays, marked
                assert (first.id, gone["id"]) in warehouse.all_rows("folders")
        finally:
            warehouse.close()
