"""Porchlight's federation protocol: identities, signed messages, scope rules and H3 cells."""
