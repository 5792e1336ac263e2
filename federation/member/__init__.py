"""The hub's side of the wire: a member's gateway client (join, register, alerts, the stream)
and the checks a hub runs on every routed agency request before its owner sees it.
May import the protocol; never a program (gateway, agency, authority), ``hub`` or ``plugins``.
"""
