"""The log auditor behind `porchlight log verify`: anyone replays and checks a gateway's whole
public log. A program like the others: imports the protocol, never another program or ``hub``.
"""
