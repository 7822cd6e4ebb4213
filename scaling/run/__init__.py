"""Running jobs: one run, a sweep, the failure drill, the pool of clusters, checkpoints, the
checks made before any work, ``scaling cluster`` and submission, and calibration runs."""
