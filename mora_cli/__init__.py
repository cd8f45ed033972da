"""The `mora` command: the orchestrator that drives the other packages."""
