"""Dataset layer: nnU-Net-style folders with per-case availability masks, labels, reports and genetics."""
