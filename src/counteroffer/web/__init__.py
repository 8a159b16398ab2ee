"""``counteroffer web``: a local browser app to browse runs and episodes and to play against any agent."""
