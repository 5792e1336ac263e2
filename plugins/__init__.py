"""The built-in plugins: camera sources, detectors and notifiers. Each implements hooks that
``hub.hookspecs`` declares and is loaded the same way as a third-party plugin.
May import ``hub``'s public modules and ``federation``; ``hub`` never imports these by name.
"""
