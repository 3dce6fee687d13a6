"""The long-running processes, one module each: `serve` (all in one), `worker` and
`scheduler` (the Redis plane's; `linkflow api` is uvicorn's). Each builds itself through
`linkflow.wiring`, handles its signals and shuts down gracefully."""
