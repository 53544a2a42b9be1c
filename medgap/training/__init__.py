"""The one generic training loop (Lightning Fabric), checkpoints, run folders, schedules."""
