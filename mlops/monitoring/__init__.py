"""Data drift of served models against their training references, in plain Python."""
