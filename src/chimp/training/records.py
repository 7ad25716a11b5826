"""Durable, append-only records per model name, kept in MLflow (policy versions, alias history).

Redis holds only task state, which may be lost; what the continual loop must remember survives
restarts of every CHIMP service and of Redis, so it lives in MLflow's backend store: one run per
model name in the experiment ``<experiment>-continual``, each record one run tag whose key is
``<kind>.<time ms>.<random>``. Tags are never rewritten, so appending needs no lock and two
writers never lose each other's records; keys sort by time. The run shows in the MLflow UI.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException

from chimp.shared.registry.mlflow_errors import apply_http_defaults, mlflow_call

_MODEL_TAG = "chimp.records_for"


@dataclass(frozen=True)
class Record:
    key: str
    kind: str
    at_ms: int
    value: str


class ModelRecords:
    """Append and read records of one kind (``history``, ``policy``) for a model name."""

    def __init__(self, tracking_uri: str, *, experiment: str = "chimp") -> None:
        apply_http_defaults()
        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self._experiment_name = f"{experiment}-continual"
        self._experiment_id: str | None = None
        self._runs: dict[str, str] = {}
        self._lock = threading.Lock()

    def _experiment(self) -> str:
        if self._experiment_id is None:
            found = self._client.get_experiment_by_name(self._experiment_name)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self._client.restore_experiment(found.experiment_id)
                self._experiment_id = str(found.experiment_id)
            else:
                try:
                    self._experiment_id = str(self._client.create_experiment(self._experiment_name))
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                        raise
                    again = self._client.get_experiment_by_name(self._experiment_name)
                    assert again is not None
                    self._experiment_id = str(again.experiment_id)
        return self._experiment_id

    def _find_runs(self, model: str) -> list[tuple[str, dict[str, str]]]:
        """Every records run of ``model`` (normally one; two after a creation race)."""
        quoted = model.replace("'", "")
        runs = self._client.search_runs(
            [self._experiment()],
            filter_string=f"tags.`{_MODEL_TAG}` = '{quoted}'",
            max_results=50,
            order_by=["attributes.start_time ASC"],
        )
        return [(str(r.info.run_id), dict(r.data.tags)) for r in runs]

    def _run_for_writing(self, model: str) -> str:
        with self._lock:
            if model in self._runs:
                return self._runs[model]
        found = self._find_runs(model)
        if found:
            run_id = found[0][0]
        else:
            run = self._client.create_run(
                self._experiment(), run_name=f"records: {model}", tags={_MODEL_TAG: model}
            )
            run_id = str(run.info.run_id)
            self._client.set_terminated(run_id, "FINISHED")
        with self._lock:
            self._runs[model] = run_id
        return run_id

    @mlflow_call
    def append(self, model: str, kind: str, value: str) -> Record:
        """Add one record; returns it with its key and time."""
        at_ms = int(time.time() * 1000)
        key = f"{kind}.{at_ms:013d}.{uuid.uuid4().hex[:8]}"
        run_id = self._run_for_writing(model)
        self._client.log_batch(run_id, tags=[RunTag(key, value)])
        return Record(key=key, kind=kind, at_ms=at_ms, value=value)

    @mlflow_call
    def read(self, model: str, kind: str) -> list[Record]:
        """Every record of ``kind`` for ``model``, oldest first."""
        prefix = f"{kind}."
        records: dict[str, Record] = {}
        for _run_id, tags in self._find_runs(model):
            for key, value in tags.items():
                if not key.startswith(prefix):
                    continue
                parts = key.split(".")
                if len(parts) != 3 or not parts[1].isdigit():
                    continue
                records[key] = Record(key=key, kind=kind, at_ms=int(parts[1]), value=value)
        return [records[k] for k in sorted(records)]

    @mlflow_call
    def models(self) -> list[str]:
        """Model names that have records."""
        names: set[str] = set()
        token: str | None = None
        while True:
            page = self._client.search_runs(
                [self._experiment()], max_results=1000, page_token=token
            )
            names |= {r.data.tags[_MODEL_TAG] for r in page if _MODEL_TAG in r.data.tags}
            token = page.token
            if not token:
                return sorted(names)
