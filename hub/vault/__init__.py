"""The footage vault: age-sealed segments with their SQLite index, retention, crash repair,
maintenance, and footage import and export (MP4 by stream copy).
May import hub's shared root modules; never cameras, neighbourhood, web, cli or federation.
"""
