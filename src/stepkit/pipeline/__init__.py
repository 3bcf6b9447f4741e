"""The whole loop: stages as `stepkit` subprocesses, self-training rounds, the demo, the replication study."""
