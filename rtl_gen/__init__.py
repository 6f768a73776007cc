"""rtl_gen: Amaranth components built from an ArrayConfig, Verilog + manifest export."""
