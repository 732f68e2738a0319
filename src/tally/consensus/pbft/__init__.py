"""PBFT ordering among n = 3f+1 consortium members (ARCHITECTURE.md section 6)."""
