"""Where the numbers go: ClickHouse (server or embedded chdb)."""
