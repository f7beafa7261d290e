"""Clinic albums: a manifest in; numbered, tagged tracks, a playlist and a track list out; incremental, parallel.

Public API: ``load_manifest`` / ``programme_manifest`` -> ``plan_albums(manifest, BuildOptions(...))``
-> ``build_albums(plans, executor)`` with any ``concurrent.futures.Executor`` (``local_executor(jobs)``
here; a Dask ``Client(...).get_executor()`` for a cluster), running ``jobs.render_job``.
"""
import importlib

_API = {"load_manifest": "manifest", "programme_manifest": "manifest", "BuildOptions": "plan",
        "plan_albums": "plan", "default_jobs": "pool", "local_executor": "pool", "build_albums": "runner"}
__all__ = sorted(_API)


def __getattr__(name: str):
    # Imported on first use: the renderer behind these costs ~1 s, and the CLI imports
    # album.progress (plain data) at start-up.
    if name in _API:
        return getattr(importlib.import_module(f"compassion_audio.album.{_API[name]}"), name)
    raise AttributeError(name)
