"""Integrations: plugins that run a service of their own beside the hub's (Home Assistant over MQTT).
May import ``hub``'s public modules; never ``hub.cli`` or ``hub.web``.
"""
