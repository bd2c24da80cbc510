"""The processes platform: the user's own services on one machine as nodes (see `platform`)."""
