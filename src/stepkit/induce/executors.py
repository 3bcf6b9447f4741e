"""Where videos are induced: in this process (:class:`~stepkit.induce.runner.ThreadExecutor`) or on a Ray cluster.

:class:`RayExecutor` shards the videos of one ``stepkit induce`` run over Ray actors: one actor
per endpoint for a served model (``--endpoint`` given once per server; each actor keeps its share
of the in-flight requests on its server), one per GPU for a local ``hf`` model, one per CPU for
the ``world`` and ``opencv`` inducers. Actors only compute: each returns the graph and the
video's result to the driver, which alone writes the output folder (graphs, manifest, summary),
so the resume rules, the summary and the graphs are those of a one-process run. A killed actor
is restarted by Ray and its videos are retried; a killed driver resumes from the manifest like
any run. Video paths must be readable on every node (a shared filesystem, as usual for Ray).

A local cluster (no ``--address``, or one on 127.0.0.1) talks over loopback only: Ray's
"no cluster" mode is switched on (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), without which Ray
binds its node to the machine's routable address even when told 127.0.0.1.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Mapping

from stepkit.errors import ConfigError
from stepkit.induce.runner import Job, Outcome


_LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
_AUTH_VARS = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def _loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def _actor_class():
    import ray

    @ray.remote(max_restarts=3, max_task_retries=3)
    class InduceActor:
        """Holds one inducer (one model or one endpoint) and induces videos sent to it."""

        def __init__(self, backend: str, options: dict[str, Any]) -> None:
            import os

            os.environ.setdefault("OMP_NUM_THREADS", "1")
            from stepkit.induce.base import get_inducer

            self.inducer = get_inducer(backend, **options)
            prepare = getattr(self.inducer, "prepare", None)
            if callable(prepare):
                prepare()

        def pid(self) -> int:
            import os

            return os.getpid()

        def induce(self, job: Job) -> Outcome:
            from stepkit.induce.runner import induce_one

            return induce_one(self.inducer, job)

    return InduceActor


class RayExecutor:
    """Runs ``stepkit induce`` videos on Ray actors; see the module docstring.

    ``backend`` and ``options`` are what the driver built its inducer from (``get_inducer``);
    ``address`` is a running cluster's (``ray start --head`` prints it), or None for a local one
    started here and stopped afterwards; ``actors`` overrides the number of actors.
    ``init_options`` go to ``ray.init`` (for example ``_node_ip_address``).
    """

    name = "ray"

    def __init__(self, backend: str, options: Mapping[str, Any], *, address: str | None = None,
                 actors: int | None = None, init_options: Mapping[str, Any] | None = None) -> None:
        if address is None or _loopback(address):
            # Ray resolves 127.0.0.1 to the machine's routable address and binds its gRPC servers on
            # every interface; with "no cluster" mode (its Windows/macOS default) every process it
            # starts binds 127.0.0.1 only. Must be set before ray is first imported.
            os.environ.setdefault(_LOCAL_ONLY, "0")
        self._token_dir: str | None = None
        if address is None and not any(os.environ.get(k) for k in _AUTH_VARS):
            # A cluster started for this run gets its own token (Ray's token authentication)
            # in a private temp dir, removed afterwards, instead of a new ~/.ray/auth_token.
            import secrets
            import tempfile

            self._token_dir = tempfile.mkdtemp(prefix="stepkit-ray-")
            token = os.path.join(self._token_dir, "auth_token")
            fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_hex(32))
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ["RAY_AUTH_TOKEN_PATH"] = token
        try:
            import ray  # noqa: F401
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install 'stepkit[ray]'") from None
        if actors is not None and actors < 1:
            raise ConfigError(f"--executor ray: actors must be a positive number, got {actors}")
        self.backend, self.options = backend, dict(options)
        self.address, self.actors = address, actors
        self.init_options = dict(init_options or {})
        self.actor_pids: list[int] = []

    @property
    def driver_prepare(self) -> bool:
        """Whether the driver builds the inducer's backend before the run: only for a served model
        (cheap, and it fixes the model name and identity every actor uses), never a local model
        that would be loaded on the driver for nothing."""
        bo = self.options.get("backend_options") or {}
        return self.backend == "vlm" and bool(self.options.get("endpoint") or (isinstance(bo, Mapping) and bo.get("endpoint")))

    def _plan(self, inducer: Any) -> tuple[list[dict[str, Any]], dict[str, Any], int]:
        """Options per actor, the actor's Ray resources and how many videos each takes at once."""
        import ray

        opts = dict(self.options)
        if self.backend == "vlm":
            endpoints: list[str] = []
            if self.driver_prepare:
                be = inducer.backend  # built by the runner's prepare(): its model and identity are final
                inner = getattr(be, "inner", be)
                endpoints = list(getattr(inner, "endpoints", []) or [])
            if endpoints:
                n = self.actors or len(endpoints)
                in_flight = max(1, -(-inducer.cfg.in_flight // n))
                bo = dict(opts.get("backend_options") or {})
                # every actor answers as the driver's model: graphs name the same model whichever ran them
                bo.setdefault("model_id", inner.model_id)
                per = []
                for i in range(n):
                    o = {**opts, "endpoint": endpoints[i % len(endpoints)], "model": inner.model, "in_flight": in_flight,
                         "backend_options": bo}
                    per.append(o)
                return per, {"num_cpus": 0.5}, max(1, -(-(inducer.cfg.videos_in_flight or inducer.cfg.in_flight) // n))
            gpus = int(ray.cluster_resources().get("GPU", 0))
            n = self.actors or max(1, gpus)
            return [dict(opts) for _ in range(n)], ({"num_gpus": 1} if gpus else {"num_cpus": 1}), 1
        n = self.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        return [dict(opts) for _ in range(n)], {"num_cpus": 1}, 1

    def run(self, inducer: Any, jobs: list[Job]) -> Iterator[Outcome]:
        """Yield one :class:`Outcome` per job, as the actors finish them."""
        import ray

        started = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_options}
            try:
                if self.address:
                    ray.init(address=self.address, **kwargs)
                else:
                    kwargs.setdefault("_node_ip_address", "127.0.0.1")  # a local cluster talks over loopback only
                    ray.init(**kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
                raise ConfigError(f"--executor ray: cannot connect to {where}: {exc}") from None
            started = True
        try:
            per_actor, resources, width = self._plan(inducer)
            cls = _actor_class()
            actors = [cls.options(**resources, max_concurrency=max(1, width)).remote(self.backend, o)
                      for o in per_actor]
            self.actor_pids = ray.get([a.pid.remote() for a in actors])
            queue = list(jobs)
            load = {i: 0 for i in range(len(actors))}
            running: dict[Any, tuple[int, Job]] = {}

            def submit() -> None:
                while queue:
                    i = min(load, key=lambda k: load[k])
                    if load[i] >= width:
                        return
                    job = queue.pop(0)
                    running[actors[i].induce.remote(job)] = (i, job)
                    load[i] += 1

            submit()
            while running:
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    i, job = running.pop(ref)
                    load[i] -= 1
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the actor died for good: record, go on
                        from stepkit.induce.runner import VideoResult

                        outcome = Outcome(job, None, VideoResult(job.video_id, str(job.path), "failed",
                                                                 reason=f"{job.path}: Ray worker failed: {type(exc).__name__}: {exc}"))
                    yield outcome
                submit()
            for a in actors:
                ray.kill(a)
        finally:
            if started:
                ray.shutdown()
            if self._token_dir is not None:
                import shutil

                shutil.rmtree(self._token_dir, ignore_errors=True)
                for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
                    os.environ.pop(k, None)
                self._token_dir = None
