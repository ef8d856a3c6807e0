"""Model presets and the external-weights table, shipped as package data (motionxfer.model_files)."""
