"""Píšťalka: a whistleblowing reporting system under Act No. 171/2023 Sb."""
