"""Job workers (claim, lease, heartbeat, supervise) and the child-process entry point that runs a job."""
