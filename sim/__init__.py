"""sim: the transaction-level model, the canonical schedule and the cocotb testbenches."""
