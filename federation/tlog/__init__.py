"""The transparency log's pure parts: RFC 9162 Merkle trees, C2SP signed notes, checkpoints,
tiles and tlog-proof bundles: what a log is, not whose. May import only ``federation.errors``.
"""
