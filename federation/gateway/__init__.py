"""The neighbourhood gateway server: registration, the WebSocket stream, alert and photo relay,
agency request intake, the public log and its page. A program of its own: it imports the protocol
(``federation`` and ``federation.tlog``), never ``agency``, ``authority``, ``member`` or ``hub``.
"""
