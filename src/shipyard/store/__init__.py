"""Storage: the metadata database, the artifact store, their migrations and transfers."""
