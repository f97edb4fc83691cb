"""Secrets: references (env/file/sealed), encryption at rest with key ids, sealing."""
