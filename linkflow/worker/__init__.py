"""The worker process: consumes jobs and runs executions."""
