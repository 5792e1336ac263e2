"""The Porchlight protocol every party shares: keys, JWS messages, scope, cells, hop signatures,
the registry, announcements and the transparency log (``tlog/``); and, in subpackages of their own,
the programs built on it. The protocol modules here import only each other and ``tlog``: never
``gateway``, ``agency``, ``authority`` or ``member``, and nothing from ``hub`` or ``plugins``.
"""
