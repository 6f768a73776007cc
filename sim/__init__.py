"""sim: the transaction-level model, the canonical schedule, the cocotb testbenches and design-space sweeps."""
