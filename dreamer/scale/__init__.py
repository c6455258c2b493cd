"""Scale-out: zoom (and video) jobs spread over a Ray cluster (the optional `ray` extra).

- `Cluster`: start a local Ray cluster, or join one made with ``ray start``.
- `WorkerPool`, `run_units`: long-lived workers (Ray actors, one per GPU or per CPU slot) that
  load the model once; units of work handed to idle workers; units of dead workers retried
  elsewhere; progress aggregated on the driver.
- `zoom_units`, `ZoomJob`: zoom videos split into units that batch exactly like a
  single-process run, so the frames are identical; resumed from their frame stores.

Importing this package does not import Ray; using it without Ray raises RayUnavailableError.
"""

from .cluster import Cluster, ClusterError, RayUnavailableError, parse_address, require_ray
from .runner import ClusterProgress, RunInterrupted, RunReport, WorkerPool, WorkerSpec, run_units
from .zoom import ZoomJob, ZoomUnit, partition, resume_point, zoom_units

__all__ = [
    "Cluster", "ClusterError", "RayUnavailableError", "parse_address", "require_ray",
    "ClusterProgress", "RunInterrupted", "RunReport", "WorkerPool", "WorkerSpec", "run_units",
    "ZoomJob", "ZoomUnit", "partition", "resume_point", "zoom_units",
]
