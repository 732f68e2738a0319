"""Wallets: keys, the local coin store, coin selection, payment requests and pre-payment."""
