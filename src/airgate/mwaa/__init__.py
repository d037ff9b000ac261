"""The MWAA API: its operations, as a provider of plain-data methods."""
