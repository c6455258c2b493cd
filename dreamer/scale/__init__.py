"""Scale-out: zoom (and video) jobs spread over a Ray cluster (the optional `ray` extra).

- `Cluster`: start a local Ray cluster, or join one made with ``ray start``.
- `WorkerPool`, `run_units`: long-lived workers (Ray actors, one per GPU or per CPU slot) that
  load the model once; units of work handed to idle workers; units of dead workers retried
  elsewhere; progress aggregated on the driver.
- `run_session`, `zoom_units`: a ZoomSession's videos split into units that batch exactly like a
  single-process run, so the frames are identical; resumed from their frame stores.
- `run_videos`, `video_units`: `dreamer video` inputs, one video per unit, dreamed by the video
  library's session on the workers; resumed from their frame stores.

Importing this package does not import Ray; using it without Ray raises RayUnavailableError.
"""

from .cluster import Cluster, ClusterError, RayUnavailableError, parse_address, require_ray
from .runner import ClusterProgress, RunInterrupted, RunReport, WorkerPool, WorkerSpec, run_units
from .video import VideoTask, VideoUnit, run_videos, video_units
from .zoom import ZoomTask, ZoomUnit, check_sizes, partition, resume_point, run_session, session_tasks, zoom_units

__all__ = [
    "Cluster", "ClusterError", "RayUnavailableError", "parse_address", "require_ray",
    "ClusterProgress", "RunInterrupted", "RunReport", "WorkerPool", "WorkerSpec", "run_units",
    "VideoTask", "VideoUnit", "run_videos", "video_units",
    "ZoomTask", "ZoomUnit", "check_sizes", "partition", "resume_point", "run_session", "session_tasks", "zoom_units",
]
