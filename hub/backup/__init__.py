"""Backups of a whole hub: `porchlight backup` writes one age-encrypted archive of a data dir
(while the hub runs), `porchlight restore` fills an empty dir from it.

`archive.py` is the file format, `take.py` what goes into it, `restore.py` getting it back.
Imports the shared root modules (data dir, database, household keys, progress); nothing above.
"""
