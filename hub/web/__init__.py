"""The hub's web service (aiohttp): health today, the owner's web UI next.
May import every hub room below it; never ``hub.cli`` or a federation program.
"""
