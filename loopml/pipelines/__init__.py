"""Pipelines: steps, DAGs, caching, retries, resume and schedules, run on local processes,
threads or Ray.

``@step`` declares a step and ``@pipeline`` a function whose step calls build the DAG;
running it validates the parameters, reuses cached outputs (keyed by the step's source,
arguments, inputs, declared dependencies and library versions), runs independent steps in
parallel on an :class:`Executor`, stores every output content-addressed in the blob store,
and tracks a parent run with a child run per step and lineage between them.
:data:`closed_loop` is ``loopml.loop``'s iteration as a ready-made pipeline.
"""

from loopml.pipelines._airflow import airflow_dag, export_airflow, run_task
from loopml.pipelines._batch import predict_partitions
from loopml.pipelines._closed_loop import closed_loop
from loopml.pipelines._executors import Executor, ProcessExecutor, ThreadExecutor, get_executor
from loopml.pipelines._graph import Output
from loopml.pipelines._loading import load_pipeline, resume
from loopml.pipelines._options import StepOptions
from loopml.pipelines._pipeline import Pipeline, PipelineFailed, PipelineRun, pipeline
from loopml.pipelines._ray import RayExecutor
from loopml.pipelines._records import (
    PipelineRunRecord,
    get_pipeline_run,
    list_pipeline_runs,
    step_rows,
    step_table,
)
from loopml.pipelines._runner import StepEvent
from loopml.pipelines._schedules import (
    Schedule,
    Scheduler,
    add_schedule,
    backfill,
    get_schedule,
    list_schedules,
    remove_schedule,
)
from loopml.pipelines._step import Step, step
from loopml.pipelines._worker import StepCall, StepTimeout, step_workspace

__all__ = [
    "Executor",
    "Output",
    "Pipeline",
    "PipelineFailed",
    "PipelineRun",
    "PipelineRunRecord",
    "ProcessExecutor",
    "RayExecutor",
    "Schedule",
    "Scheduler",
    "Step",
    "StepCall",
    "StepEvent",
    "StepOptions",
    "StepTimeout",
    "ThreadExecutor",
    "add_schedule",
    "airflow_dag",
    "backfill",
    "closed_loop",
    "export_airflow",
    "get_executor",
    "get_pipeline_run",
    "get_schedule",
    "list_pipeline_runs",
    "list_schedules",
    "load_pipeline",
    "pipeline",
    "predict_partitions",
    "remove_schedule",
    "resume",
    "run_task",
    "step",
    "step_rows",
    "step_table",
    "step_workspace",
]
