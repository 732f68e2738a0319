"""What the issuer and operator services share: database, errors, request auth, HTTP client."""
