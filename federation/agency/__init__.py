"""The agency's tool: its keys, signed requests and announcements, status, and the fetch of
sealed clips with their chain of custody. May import the protocol; never another program or ``hub``.
"""
