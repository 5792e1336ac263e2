"""The household hub: what one home runs. Rooms by what a household does (``vault``, ``cameras``,
``neighbourhood``, ``web``, ``cli``); shared pieces (config, data dir, database, errors, time,
hookspecs, plugins, the household's keys) and the running hub (``service``) at this root.
Imports ``federation``; never ``plugins`` by name (they come in through the hooks).
"""
