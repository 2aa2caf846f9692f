"""A study executor on Ray: each run is one Ray task with its own CPU/GPU request.

Same interface as ``ecomlm.study.runner.local_executor``: a function
``(jobs) -> iterator of results``. The study runner still plans the waves,
checks dependencies, writes every result row into ``results.jsonl`` and skips
finished runs on resume; only *where* ``run_job`` executes changes. Jobs of one
wave are submitted together and their results are yielded as they finish, so
the store is updated after each run (a crash loses at most the runs in flight,
which the next ``ecomlm study`` re-runs, or adopts when their ``metrics.json``
was written).

Cluster: ``ray start --head`` on one node, ``ray start --address HEAD:6379`` on
the others, then ``RAY_ADDRESS=HEAD:6379 ecomlm study -c study.yaml --executor ray``
on the head. Run folders are written by the workers, so the study's
``output_dir`` must be on a file system every node mounts at the same path.
Without ``RAY_ADDRESS`` (and no running local cluster) Ray starts a local
instance on this machine.

Resources per run (``resources_for``): ``num_gpus=1`` when the method will use
a GPU (its ``device`` is ``auto``/``cuda*`` and the cluster has GPUs), else 0;
``num_cpus`` defaults to 1. Override per method family with
``make_ray_executor(per_method={"lora": {"num_cpus": 4, "num_gpus": 1}})``.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

DEFAULT_NUM_CPUS = 1.0


def _method_device(method: str, config: Mapping[str, Any]) -> str | None:
    """The method's effective ``device`` setting: the config's, else its Config default;
    None for a method whose Config has no ``device`` (CPU only, e.g. the classical floors)."""
    try:
        from ecomlm.methods import get_method_class

        fields = {f.name: f for f in dataclasses.fields(get_method_class(method).Config)}
    except Exception:
        fields = None
    if fields is not None and "device" not in fields:
        return None
    if "device" in config:
        return str(config["device"])
    field = (fields or {}).get("device")
    if field is None or field.default is dataclasses.MISSING:
        return None
    return str(field.default)


def resources_for(
    spec: Mapping[str, Any],
    cluster_gpus: float = 0.0,
    num_cpus: float = DEFAULT_NUM_CPUS,
    per_method: Mapping[str, Mapping[str, float]] | None = None,
) -> dict[str, float]:
    """Ray resource request (``num_cpus``, ``num_gpus``) for one run's spec."""
    method = str(spec.get("method", ""))
    config = spec.get("method_config") or {}
    device = _method_device(method, config)
    wants_gpu = device is not None and (device == "auto" or device.startswith("cuda"))
    request = {"num_cpus": float(num_cpus), "num_gpus": 1.0 if wants_gpu and cluster_gpus else 0.0}
    override = (per_method or {}).get(method, {})
    unknown = set(override) - {"num_cpus", "num_gpus"}
    if unknown:
        raise ValueError(
            f"ray executor: per_method[{method!r}] has unknown key(s) {sorted(unknown)}; "
            "use num_cpus / num_gpus"
        )
    request.update({k: float(v) for k, v in override.items()})
    return request


def _run_job_remote(job: Any) -> dict[str, Any]:
    """Body of the Ray task: the study runner's own ``run_job`` (never raises for a run)."""
    import socket

    from ecomlm.study.runner import run_job

    result = run_job(job)
    result["worker"] = {"host": socket.gethostname(), "pid": os.getpid()}
    return result


def _failed(job: Any, error: str, start: float) -> dict[str, Any]:
    return {
        "id": job.run_id,
        "status": "failed",
        "error": error,
        "seconds": round(time.perf_counter() - start, 3),
    }


def ensure_ray(address: str | None = None, **init_kwargs: Any) -> Any:
    """Connect to (or start) Ray once; an existing ``ray.init`` is reused as is."""
    import ray

    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        ray.init(address=address, include_dashboard=False, **init_kwargs)
    return ray


def make_ray_executor(
    address: str | None = None,
    num_cpus: float = DEFAULT_NUM_CPUS,
    per_method: Mapping[str, Mapping[str, float]] | None = None,
    max_in_flight: int | None = None,
    init_kwargs: Mapping[str, Any] | None = None,
) -> Callable[[list[Any]], Iterator[dict[str, Any]]]:
    """An executor for ``run_study(cfg, executor=...)`` running each job as a Ray task.

    ``max_in_flight`` caps how many runs are submitted at once (default: as many as
    the cluster's CPUs hold at ``num_cpus`` each, so a submitted run is a running one).
    When the consumer stops early (the study's time budget), nothing new is submitted
    and the runs in flight are waited for, not cancelled: their folders are complete
    and the study records them (``ResultStore.adopt_finished``). An error or Ctrl-C
    cancels them.
    """

    def ray_executor(jobs: list[Any]) -> Iterator[dict[str, Any]]:
        if not jobs:
            return
        ray = ensure_ray(address, **dict(init_kwargs or {}))
        resources = ray.cluster_resources()
        cluster_gpus = float(resources.get("GPU", 0.0))
        remote = ray.remote(max_retries=0)(_run_job_remote)
        queue = list(jobs)
        pending: dict[Any, tuple[Any, float]] = {}
        limit = max_in_flight or max(1, int(resources.get("CPU", 1) // num_cpus))

        def submit() -> None:
            while queue and len(pending) < limit:
                job = queue.pop(0)
                request = resources_for(job.spec, cluster_gpus, num_cpus, per_method)
                ref = remote.options(name=f"ecomlm-run:{job.run_id}", **request).remote(job)
                pending[ref] = (job, time.perf_counter())

        try:
            submit()
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                job, start = pending.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except Exception as e:  # worker died, out of memory, unpicklable, ...
                    result = _failed(job, f"ray task failed: {type(e).__name__}: {e}", start)
                yield result
                submit()  # after the consumer took the result: it may have stopped
        except GeneratorExit:  # the consumer stopped early: let the running runs finish
            queue.clear()
            if pending:
                ray.wait(list(pending), num_returns=len(pending))
            pending.clear()
            raise
        finally:
            for ref in pending:  # an error or Ctrl-C: nothing more is waited for
                ray.cancel(ref, force=True)

    return ray_executor


def ray_executor(jobs: list[Any]) -> Iterator[dict[str, Any]]:
    """Default Ray executor (``RAY_ADDRESS`` or a local instance, 1 CPU per run)."""
    return make_ray_executor()(jobs)
