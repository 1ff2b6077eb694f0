"""
### Retrain and deploy

Builds a point-in-time correct training set from the offline store, trains XGBoost,
evaluates it on a later window, registers it with its metrics and deploys it to the
serverless endpoint.

- Only labels known at run time are used: transactions older than the label delay.
- The evaluation window is the last `test_days` of labelled data, one label delay after
  the training window ends.
- A model whose average precision is below `min_average_precision` is registered as
  `Rejected` and not deployed.
- Deployment updates the endpoint without downtime: the old model serves until the new one
  is ready.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task

from fraud_airflow.dag_defaults import DEFAULT_ARGS, DEPLOYED_MODEL_ASSET, START_DATE, VALIDATED_FEATURES_ASSET

PARAMS = {
    "as_of": Param(None, type=["null", "string"], description="Retraining time (ISO 8601, UTC); default: the run's data interval end, capped at the last transaction."),
    "test_days": Param(7, type="integer", minimum=1, description="Days of labelled data in the evaluation window."),
    "burn_in_days": Param(7, type="integer", minimum=0, description="First days of data left out of training, while windows fill."),
    "training_days": Param(None, type=["null", "integer"], minimum=1, description="Maximum training window in days, or empty for all data."),
    "num_boost_round": Param(200, type="integer", minimum=1, description="XGBoost boosting rounds."),
    "min_average_precision": Param(0.05, type="number", minimum=0, maximum=1, description="Average precision a model needs to be approved."),
    "endpoint_name": Param("card-fraud-scoring", type="string", description="Serverless endpoint to create or update."),
    "memory_size_in_mb": Param(2048, type="integer", enum=[1024, 2048, 3072, 4096, 5120, 6144], description="Serverless memory size."),
    "max_concurrency": Param(5, type="integer", minimum=1, maximum=200, description="Serverless max concurrency; excess requests get HTTP 429."),
}


@dag(
    schedule=[VALIDATED_FEATURES_ASSET],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["fraud-detection", "training", "deployment"],
    params=PARAMS,
    doc_md=__doc__,
)
def retrain_and_deploy():
    @task
    def plan_windows(params=None, data_interval_end=None, run_after=None) -> dict:
        """Place the training and evaluation windows."""
        from fraud_detection.config import Settings
        from fraud_detection.pipelines.retrain import plan

        from fraud_airflow.dag_params import parse_utc_time
        from fraud_airflow.task_errors import fail_without_retry

        moment = params["as_of"] or (data_interval_end or run_after).isoformat()
        with fail_without_retry(ValueError):
            as_of = parse_utc_time("as_of", moment)
            return plan(
                Settings.from_env(),
                as_of,
                test_days=params["test_days"],
                burn_in_days=params["burn_in_days"],
                training_days=params["training_days"],
            )

    @task
    def build_training_sets(windows: dict, run_id=None) -> dict:
        """Build point-in-time training and evaluation sets."""
        from fraud_detection.config import Settings
        from fraud_detection.pipelines.retrain import build_training_sets

        return build_training_sets(Settings.from_env(), windows, _run_key(run_id))

    @task
    def train_and_evaluate(paths: dict, windows: dict, params=None, run_id=None) -> dict:
        """Train XGBoost and evaluate it on the later window."""
        from fraud_airflow.task_errors import fail_without_retry
        from fraud_detection.config import Settings
        from fraud_detection.pipelines.retrain import train_and_evaluate

        with fail_without_retry(ValueError):
            return train_and_evaluate(
                Settings.from_env(), paths, windows, _run_key(run_id), num_boost_round=params["num_boost_round"]
            )

    @task
    def register_model(trained: dict, windows: dict, params=None) -> dict:
        """Register the model version with its metrics and approval status."""
        from fraud_detection.config import Settings
        from fraud_detection.pipelines.retrain import register

        return register(Settings.from_env(), trained, windows, min_average_precision=params["min_average_precision"])

    @task.short_circuit
    def is_approved(model: dict) -> bool:
        """Skip deployment of a rejected model."""
        return model["status"] == "Approved"

    @task(outlets=[DEPLOYED_MODEL_ASSET])
    def deploy_endpoint(model: dict, params=None) -> dict:
        """Create or update the serverless endpoint with the new model."""
        from fraud_detection.config import Settings
        from fraud_detection.pipelines.retrain import deploy

        return deploy(
            Settings.from_env(),
            model,
            endpoint_name=params["endpoint_name"],
            memory_size_in_mb=params["memory_size_in_mb"],
            max_concurrency=params["max_concurrency"],
        )

    windows = plan_windows()
    paths = build_training_sets(windows)
    trained = train_and_evaluate(paths, windows)
    model = register_model(trained, windows)
    is_approved(model) >> deploy_endpoint(model)


def _run_key(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in run_id)


retrain_and_deploy()
