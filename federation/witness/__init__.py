"""A C2SP tlog-witness: cosigns a log's checkpoint only when it is consistent with the last one
it cosigned (`porchlight witness`, for a neighbourhood association or a journalist; a hub can
run one for its own gateway). A program like the others: imports the protocol, never another
program or ``hub``.
"""
