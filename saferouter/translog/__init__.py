"""Transparency logs: the pure Merkle and signed-note cores, and the log shell."""
