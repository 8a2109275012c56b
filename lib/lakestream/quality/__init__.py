"""Data quality of the ingestion path: landed files -> bronze -> silver, with quarantine, duplicates and audit."""
