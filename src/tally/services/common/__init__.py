"""What the issuer and operator services share, so that both read and answer alike.

`amounts` (the one rule for amounts in JSON), `wire` (JSON documents as wire models),
`requests` (parsing request bodies and path parameters), `errors` (refusals and their HTTP
answers), `auth` (signed requests and tokens), `config` (the TOML files), `db` (engines and
rows), `client` (calling a service), `process` (running one), `clock`.
"""
