"""Adopting existing data: manifests written from a back-office or gateway database."""
