"""models: reference networks, training recipes and small trained checkpoints."""
