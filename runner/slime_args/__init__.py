"""slime's arguments: a recipe rendered to train.py's argv, the user's overrides, and the flag schema and
cross-flag rules they are checked against."""
