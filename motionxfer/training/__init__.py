"""Training the personal model: settings, the frame cache and batches, losses, the networks' steps
and the loop around them (checkpoints, logs, validation, several processes)."""
