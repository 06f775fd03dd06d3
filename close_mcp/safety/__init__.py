"""The safety net: what is saved before a write Close cannot undo (snapshots, backups), and
how it is put back (revert plans, restore)."""
