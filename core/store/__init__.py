"""Floor 2, the workspace on disk: paths, atomic JSON, run records, dataset records, quota, earlier runs as sources."""
