"""A C2SP tlog-witness: cosigns a log's checkpoint only when it is consistent with the last one
it cosigned (`porchlight witness`, for a neighbourhood association or a journalist). The rules themselves
are protocol (`federation/tlog/witness.py`), shared with hubs that witness their own gateway;
this program is the server, its SQLite memory and its data dir around them. A program like the
others: imports the protocol, never another program or ``hub``.
"""
