"""The issuer and operator services: their own HTTP APIs and databases."""
