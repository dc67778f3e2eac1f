"""Worker processes: the supervisor (policy and mechanism) and the worker entry point."""
