"""DAG integrity and policy: every DAG file imports cleanly, stays light, and follows policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("*.py"))
EXPECTED_DAG_IDS = {"weekly_batch_aggregates", "feature_consistency_check", "retrain_and_deploy", "batch_transform"}
HEAVY_MODULES = ("xgboost", "great_expectations", "sklearn", "duckdb", "pandas", "pyarrow")


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(PROJECT_ROOT / "dags"))


def test_dag_files_import_without_errors(dag_bag):
    assert dag_bag.import_errors == {}


def test_all_dags_are_present(dag_bag):
    assert set(dag_bag.dag_ids) == EXPECTED_DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_dag_follows_policy(dag_bag, dag_id):
    dag = dag_bag.dags[dag_id]
    assert dag.tags, f"{dag_id} has no tags"
    assert dag.doc_md, f"{dag_id} has no doc_md"
    for task in dag.tasks:
        assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has owner {task.owner!r}"
        assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_weekly_dag_schedules_weeks_with_catchup(dag_bag):
    dag = dag_bag.dags["weekly_batch_aggregates"]
    assert dag.catchup is True
    assert dag.timetable.expression == "0 0 * * 1"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_dag_file_parses_without_heavy_imports(dag_file):
    # A fresh interpreter shows what parsing the file alone imports.
    script = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('dag_under_test', {str(dag_file)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_plugin_modules_import_under_bare_names():
    # Airflow's plugin manager executes every plugins/**/*.py under its bare file name.
    plugin_files = sorted((PROJECT_ROOT / "plugins").rglob("*.py"))
    names = [path.stem for path in plugin_files if path.stem != "__init__"]
    assert len(names) == len(set(names)), f"plugin module names repeat: {names}"
    for path in plugin_files:
        script = (
            "import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location({path.stem!r}, {str(path)!r})\n"
            "module = importlib.util.module_from_spec(spec)\n"
            "sys.modules[spec.name] = module\n"
            "spec.loader.exec_module(module)\n"
        )
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, f"{path.name} fails as a bare module: {result.stderr[-500:]}"
