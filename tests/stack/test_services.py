"""The stack as data: commands, ports and environment of each service."""

from __future__ import annotations

from pathlib import Path

from chimp.stack.config import StackConfig, StackSettings
from chimp.stack.services import StackPlan, build_specs, shared_env
from chimp.stack.spec import HttpReady


def settings(tmp_path: Path) -> StackSettings:
    s = StackSettings(_env_file=None)
    s.data_dir = tmp_path
    s.stack = StackConfig(mlflow_port=7001, redis_port=7002)
    s.serving = s.serving.model_copy(update={"port": 7003})
    return s


def test_every_python_service_is_in_the_stack_with_its_port(tmp_path: Path) -> None:
    plan = StackPlan(tmp_path, "redis://127.0.0.1:7002/0", start_redis=True)
    specs = {s.name: s for s in build_specs(settings(tmp_path), plan)}

    assert list(specs) == [
        "redis", "mlflow", "training", "worker", "pretrained", "serving", "frontend"
    ]  # fmt: skip
    assert specs["training"].argv[1:] == ("serve",)
    assert specs["worker"].argv[1:] == ("worker",)
    assert specs["serving"].env["CHIMP_SERVING__PORT"] == "7003"
    assert specs["serving"].readiness == HttpReady("http://127.0.0.1:7003/health/ready")
    assert specs["frontend"].env["CHIMP_FRONTEND__SERVING_URL"] == "http://127.0.0.1:7003"
    assert specs["frontend"].env["CHIMP_FRONTEND__TRAINING_URL"] == "http://127.0.0.1:5253"
    assert specs["mlflow"].env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert f"sqlite:///{tmp_path}/mlflow/mlflow.db" in specs["mlflow"].argv
    assert specs["redis"].argv[specs["redis"].argv.index("--dir") + 1] == str(tmp_path / "redis")
    # MLflow and Redis are ready before the services that use them start.
    assert {specs[n].stage for n in ("redis", "mlflow")} == {0}
    assert {specs[n].stage for n in ("training", "worker", "serving", "frontend")} == {1}
    # Once MLflow is up, the first start registers the pretrained model from the cache only.
    assert specs["pretrained"].argv[1:] == ("models", "pretrained", "--first-start")
    assert specs["pretrained"].oneshot
    assert specs["pretrained"].stage == 1


def test_the_pretrained_model_can_be_turned_off(tmp_path: Path) -> None:
    plan = StackPlan(tmp_path, "redis://127.0.0.1:7002/0", start_redis=True)
    s = settings(tmp_path)
    s.stack = s.stack.model_copy(update={"pretrained": False})

    names = [spec.name for spec in build_specs(s, plan)]

    assert "pretrained" not in names
    assert "training" in names


def test_a_reachable_redis_is_reused_not_started(tmp_path: Path) -> None:
    plan = StackPlan(tmp_path, "redis://elsewhere:6379/0", start_redis=False)
    s = settings(tmp_path)

    names = [spec.name for spec in build_specs(s, plan)]
    env = shared_env(s, plan, "tok")

    assert "redis" not in names
    assert env["CHIMP_REDIS_URL"] == "redis://elsewhere:6379/0"
    assert env["CHIMP_MLFLOW__TRACKING_URI"] == "http://127.0.0.1:7001"
    assert env["CHIMP_DATA_DIR"] == str(tmp_path)
    assert env["CHIMP_AUTH__TOKEN"] == "tok"
