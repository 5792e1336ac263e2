"""The cameras: sources as the hub sees them, adding and discovering them, the recorder, the
recording rules and motion events. May import the vault and hub's shared root modules; never
neighbourhood, web or cli.
"""
