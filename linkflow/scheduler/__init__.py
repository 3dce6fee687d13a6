"""The scheduler: fires schedules and wakes waiting executions (in-process for serve)."""
