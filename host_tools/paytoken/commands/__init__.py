"""Sub-command modules of the paytoken CLI."""
