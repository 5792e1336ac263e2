"""The ``porchlight`` command: the parser, and one module per noun that parses and calls the
rooms. The only part of ``hub`` (with the demo) that may import the gateway, agency and authority programs.
"""
