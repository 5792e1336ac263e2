"""The hub in its neighbourhood: the gateway consumer and outbox, alerts and their attachments,
LAN neighbours over mDNS, and the inbox of agency requests. May import the vault, the cameras,
hub's shared root modules and the protocol with ``federation.member``; never a federation program.
"""
