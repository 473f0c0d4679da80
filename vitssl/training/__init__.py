"""The method-agnostic training loop and what it needs: optimiser, schedules, checkpoints, logs."""
