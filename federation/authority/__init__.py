"""The registry authority's tool: the list of agencies, signed and published registry versions.
May import the protocol; never another program or ``hub``.
"""
